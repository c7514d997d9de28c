#!/usr/bin/env python3
"""Train a student (VGG-style CNN by default) on hard labels blended with the teacher's.

Run from this folder, after train_teacher.py:
    python train_blend.py hparams/cnn_blend.yaml [--key=value ...]      # blended CNN
    python train_blend.py hparams/cnn.yaml                              # hard labels only
    python train_blend.py hparams/cnn_ctc_blend.yaml [--key=value ...]  # CTC targets

The loss is ``hard_weight · hard loss + (1 - hard_weight) · CE(teacher top-k at T)``. With
``teacher_mode: online`` the teacher runs inside each training step; with ``offline`` its
top-k posteriors are dumped once to ``teacher_store`` and read back by utterance ID.
"""

import sys

from blend_modules.data.datasets import dataio_prepare, train_loader_kwargs
from blend_modules.experiment import (
    finish_training,
    load_hparams,
    prepare_data,
    start_output_folder,
)
from blend_modules.training.brains import StudentBrain
from blend_modules.training.teacher import check_teacher_preparation, load_blending_teacher
from blend_modules.training.teacher_store import attach_teacher_store, check_teacher_store

if __name__ == "__main__":
    experiment = load_hparams(sys.argv[1:])
    hparams = experiment.hparams
    check_teacher_preparation(hparams)  # before preparing: never rewrite a teacher's data
    prepare_data(experiment)
    datasets = dataio_prepare(hparams)

    # The teacher, its options checked (None when hard_weight is 1: the hard-label baseline)
    teacher, teacher_summary = load_blending_teacher(hparams)
    offline = teacher is not None and hparams["teacher_mode"] == "offline"
    if offline:
        check_teacher_store(teacher, hparams)  # an unusable existing store: refused here
    start_output_folder(experiment)
    if offline:
        # dumped once (resumable) to its top-k store; the store serves every k and T
        store = attach_teacher_store(datasets["train"], teacher, hparams, experiment.device)
        teacher_summary.update(store)
        teacher = None

    student_brain = StudentBrain(
        modules=hparams["modules"],
        opt_class=hparams["opt_class"],
        hparams=hparams,
        run_opts=experiment.run_opts,
        checkpointer=hparams["checkpointer"],
        teacher=teacher,
    )
    student_brain.fit(
        student_brain.hparams.epoch_counter,
        datasets["train"],
        datasets["valid"],
        train_loader_kwargs=train_loader_kwargs(datasets["train"], hparams),
        valid_loader_kwargs=hparams["eval_dataloader_opts"],
    )
    finish_training(student_brain, datasets, hparams, teacher_summary)

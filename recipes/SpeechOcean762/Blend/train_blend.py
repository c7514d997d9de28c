#!/usr/bin/env python3
"""speechocean762: train the VGG CNN blended with the teacher, or on hard labels only:
    python train_blend.py hparams/cnn_blend.yaml [--key=value ...]
    python train_blend.py hparams/cnn.yaml
The same flow as every recipe's (recipes/FSDD/Blend/train_blend.py explains each step).
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

    teacher, teacher_summary = load_blending_teacher(hparams)
    offline = teacher is not None and hparams["teacher_mode"] == "offline"
    if offline:
        check_teacher_store(teacher, hparams)  # an unusable existing store: refused here
    start_output_folder(experiment)
    if offline:
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

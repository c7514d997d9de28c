#!/usr/bin/env python3
"""Train a student (VGG-style CNN by default) on hard labels blended with a teacher's.

Run from this folder, after train_teacher.py:
    python train_blend.py hparams/cnn_blend.yaml [--key=value ...]   # blended CNN
    python train_blend.py hparams/cnn.yaml                           # CNN on hard labels only

The loss is ``hard_weight · CE(hard) + (1 - hard_weight) · CE(teacher top-k at T)``. With
``teacher_mode: online`` the teacher runs inside each training step; with ``offline`` its
top-k posteriors are dumped once to ``teacher_store`` and read back by utterance ID.
"""

import sys

from blend_modules.brains import BlendBrain
from blend_modules.data import dataio_prepare
from blend_modules.losses import check_blend_options
from blend_modules.recipe import fit_and_test, setup_experiment
from blend_modules.teacher import attach_teacher_store, load_teacher

if __name__ == "__main__":
    hparams, run_opts = setup_experiment(sys.argv[1:])
    blending = hparams["hard_weight"] != 1.0
    if blending:  # cnn.yaml (hard labels only) has no teacher settings at all
        check_blend_options(
            hparams["hard_weight"],
            hparams["top_k"],
            hparams["targets"].num_labels,
            hparams["temperature"],
            hparams["teacher_mode"],
        )
    datasets = dataio_prepare(hparams)

    teacher, teacher_summary = None, {}
    if blending:
        teacher = load_teacher(hparams["teacher_folder"], hparams["features"], hparams["targets"])
        teacher_summary = {"teacher_mode": hparams["teacher_mode"], "teacher": teacher.checkpoint}
        if hparams["teacher_mode"] == "offline":
            device = run_opts.get("device", "cpu")
            teacher_summary.update(
                attach_teacher_store(datasets["train"], teacher, hparams, device)
            )
            teacher = None

    student_brain = BlendBrain(
        modules=hparams["modules"],
        opt_class=hparams["opt_class"],
        hparams=hparams,
        run_opts=run_opts,
        checkpointer=hparams["checkpointer"],
        teacher=teacher,
    )
    fit_and_test(student_brain, datasets, hparams, teacher_summary)

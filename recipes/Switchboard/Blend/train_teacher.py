#!/usr/bin/env python3
"""Switchboard: train the teacher (BLSTM by default) on Kaldi pdf alignments or CTC units:
    python train_teacher.py hparams/blstm.yaml --data_folder=... [--key=value ...]
    python train_teacher.py hparams/blstm_ctc.yaml --data_folder=... [--key=value ...]
See README for the data paths every run needs; the flow is every recipe's
(recipes/FSDD/Blend/train_teacher.py explains each step).
"""

import sys

from blend_modules.data.datasets import dataio_prepare, train_loader_kwargs
from blend_modules.experiment import (
    finish_training,
    load_hparams,
    prepare_data,
    start_output_folder,
)
from blend_modules.training.brains import TeacherBrain

if __name__ == "__main__":
    experiment = load_hparams(sys.argv[1:])
    hparams = experiment.hparams

    prepare_data(experiment)
    datasets = dataio_prepare(hparams)
    start_output_folder(experiment)

    teacher_brain = TeacherBrain(
        modules=hparams["modules"],
        opt_class=hparams["opt_class"],
        hparams=hparams,
        run_opts=experiment.run_opts,
        checkpointer=hparams["checkpointer"],
    )
    teacher_brain.fit(
        teacher_brain.hparams.epoch_counter,
        datasets["train"],
        datasets["valid"],
        train_loader_kwargs=train_loader_kwargs(datasets["train"], hparams),
        valid_loader_kwargs=hparams["eval_dataloader_opts"],
    )

    finish_training(teacher_brain, datasets, hparams)

#!/usr/bin/env python3
"""speechocean762: train the BLSTM teacher on senone frame targets (the corpus is prepared and
aligned to senones first, once, by the YAML's `prepare`):
    python train_teacher.py hparams/blstm.yaml [--key=value ...]
    python train_teacher.py hparams/blstm_ctc.yaml [--key=value ...]  # CTC targets
The same flow as every recipe's (recipes/FSDD/Blend/train_teacher.py explains each step).
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

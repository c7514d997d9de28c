#!/usr/bin/env python3
"""Train the teacher: a frame classifier (BLSTM by default) on hard targets.

Run from this folder:
    python train_teacher.py hparams/blstm.yaml [--key=value ...]      # frame targets
    python train_teacher.py hparams/blstm_ctc.yaml [--key=value ...]  # CTC targets

The model, features, targets and data preparation all come from the YAML; the best checkpoint on
valid frame accuracy (or WER, for CTC targets) is what ``train_blend.py`` loads as the teacher.
To train on your own corpus, copy this folder's scripts and hparams/ and replace
hparams/corpus.yaml (README).
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
    # The YAML and the command line's --key=value overrides (under torchrun: the DDP group)
    experiment = load_hparams(sys.argv[1:])
    hparams = experiment.hparams

    # The corpus (the YAML's `prepare`, once, on the main process) and the targets' own needs
    prepare_data(experiment)
    datasets = dataio_prepare(hparams)  # every manifest and target checked before training
    start_output_folder(experiment)  # nothing is written there before the checks pass

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

    # The best checkpoint on valid, tested (and decoded to words): summary.json, inference/
    finish_training(teacher_brain, datasets, hparams)

#!/usr/bin/env python3
"""Train the teacher: a frame classifier (BLSTM by default) on hard frame targets.

Run from this folder:
    python train_teacher.py hparams/blstm.yaml [--key=value ...]

The model, features and data preparation all come from the YAML; the best checkpoint on valid
frame accuracy is what ``train_blend.py`` loads as the teacher.
"""

import sys

from blend_modules.brains import FrameBrain
from blend_modules.data import dataio_prepare
from blend_modules.recipe import fit_and_test, setup_experiment

if __name__ == "__main__":
    hparams, run_opts = setup_experiment(sys.argv[1:])
    datasets = dataio_prepare(hparams)
    teacher_brain = FrameBrain(
        modules=hparams["modules"],
        opt_class=hparams["opt_class"],
        hparams=hparams,
        run_opts=run_opts,
        checkpointer=hparams["checkpointer"],
    )
    fit_and_test(teacher_brain, datasets, hparams)

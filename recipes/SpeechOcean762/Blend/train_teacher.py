#!/usr/bin/env python3
"""Train the teacher: a frame classifier (BLSTM by default) on hard targets.

Run from this folder (speechocean762):
    python train_teacher.py hparams/blstm.yaml [--key=value ...]

The model, features and data preparation all come from the YAML; the best checkpoint on valid
frame accuracy (or WER, for CTC targets) is what ``train_blend.py`` loads as the teacher.
"""

import sys

from blend_modules.scripts import train_teacher

if __name__ == "__main__":
    train_teacher(sys.argv[1:])

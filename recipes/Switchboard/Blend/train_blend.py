#!/usr/bin/env python3
"""Train a student (VGG-style CNN by default) on hard labels blended with a teacher's.

Run from this folder, after train_teacher.py (with the same data overrides):
    python train_blend.py hparams/cnn_blend.yaml [--key=value ...]      # frame targets
    python train_blend.py hparams/cnn_ctc_blend.yaml [--key=value ...]  # CTC targets
    python train_blend.py hparams/cnn_blend.yaml --hard_weight=1.0 --model_name=cnn  # no teacher

The loss is ``hard_weight · hard loss + (1 - hard_weight) · CE(teacher top-k at T)``.
"""

import sys

from blend_modules.scripts import train_blend

if __name__ == "__main__":
    train_blend(sys.argv[1:])

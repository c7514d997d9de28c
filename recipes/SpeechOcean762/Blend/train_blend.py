#!/usr/bin/env python3
"""Train a student (VGG-style CNN by default) on hard labels blended with a teacher's.

Run from this folder (speechocean762), after train_teacher.py:
    python train_blend.py hparams/cnn_blend.yaml [--key=value ...]   # blended CNN
    python train_blend.py hparams/cnn.yaml                           # CNN on hard labels only

The loss is ``hard_weight · CE(hard) + (1 - hard_weight) · CE(teacher top-k at T)``. With
``teacher_mode: online`` the teacher runs inside each training step; with ``offline`` its
top-k posteriors are dumped once to ``teacher_store`` and read back by utterance ID.
"""

import sys

from blend_modules.scripts import train_blend

if __name__ == "__main__":
    train_blend(sys.argv[1:])

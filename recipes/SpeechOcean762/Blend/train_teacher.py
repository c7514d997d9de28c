#!/usr/bin/env python3
"""speechocean762: train the BLSTM teacher on senone frame targets (the corpus is prepared and
aligned first, once): ``python train_teacher.py hparams/blstm.yaml [--key=value ...]``."""

import sys

from blend_modules.scripts import train_teacher

if __name__ == "__main__":
    train_teacher(sys.argv[1:])

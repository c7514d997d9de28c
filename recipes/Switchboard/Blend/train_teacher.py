#!/usr/bin/env python3
"""Train the teacher (BLSTM by default) on Kaldi pdf alignments or CTC units.

Run from this folder:
    python train_teacher.py hparams/blstm.yaml --data_folder=... [--key=value ...]
    python train_teacher.py hparams/blstm_ctc.yaml --data_folder=... [--key=value ...]

See README for the data paths every run needs.
"""

import sys

from blend_modules.scripts import train_teacher

if __name__ == "__main__":
    train_teacher(sys.argv[1:])

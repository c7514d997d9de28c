#!/usr/bin/env python3
"""speechocean762: train the VGG CNN blended with the teacher
(``python train_blend.py hparams/cnn_blend.yaml``) or on hard labels only
(``hparams/cnn.yaml``), with ``--key=value`` overrides; see blend_modules.scripts.train_blend."""

import sys

from blend_modules.scripts import train_blend

if __name__ == "__main__":
    train_blend(sys.argv[1:])

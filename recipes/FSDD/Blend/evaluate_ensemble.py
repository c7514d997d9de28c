#!/usr/bin/env python3
"""FSDD: evaluate the average of the teacher's and the hard-label CNN's posteriors, the
simple ensemble blending is compared with (``python evaluate_ensemble.py hparams/cnn_blend.yaml
--model_name=ensemble``, after both trained); see blend_modules.scripts.evaluate_ensemble."""

import sys

from blend_modules.scripts import evaluate_ensemble

if __name__ == "__main__":
    evaluate_ensemble(sys.argv[1:])

#!/usr/bin/env python3
"""Write a trained frame model's pseudo-log-likelihoods (log posterior - log prior) for Kaldi.

Run from this folder with the command line the model trained with, e.g.
    python export_loglikes.py hparams/cnn_blend.yaml --data_folder=... [--key=value ...]

Writes ``<output_folder>/kaldi/<name>/loglikes.{ark,scp}`` for each manifest of ``export_csv``
and ``<output_folder>/kaldi/train_pdf.counts`` (the priors); decode them with Kaldi's
``latgen-faster-mapped`` as README shows.
"""

import sys

from blend_modules.scripts import export_for_kaldi

if __name__ == "__main__":
    export_for_kaldi(sys.argv[1:])

#!/usr/bin/env python3
"""Decode export_loglikes.py's pseudo-log-likelihoods with a Kaldi graph, in Python.

Run from this folder with the command line the model trained with, plus the graph:
    python decode_loglikes.py hparams/cnn_blend.yaml $DATA $ALI \
        --kaldi_graph_folder=/kaldi/egs/swbd/s5c/exp/tri4/graph_sw1_tg \
        --kaldi_model=/kaldi/egs/swbd/s5c/exp/tri4_ali_nodup/final.mdl

Chooses the acoustic scale on dev, decodes eval2000 at it and writes, in
``<output_folder>/kaldi``: ``<set>/text``, ``<set>/ctm``, ``wer_<set>.txt`` (GLM-mapped, as the
CTC recipe scores) and ``decode_summary.json``. No Kaldi binary is run.
"""

import sys

from blend_modules.scripts import decode_exported

if __name__ == "__main__":
    decode_exported(sys.argv[1:])

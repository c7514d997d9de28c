#!/usr/bin/env python3
"""Decode export_loglikes.py's pseudo-log-likelihoods with a Kaldi graph, in Python.

With the command line the model trained with (``$DATA $ALI`` of docs/SWITCHBOARD.md), plus:
    python decode_loglikes.py hparams/cnn_blend.yaml $DATA $ALI \
        --kaldi_graph_folder=/kaldi/egs/swbd/s5c/exp/tri4/graph_sw1_tg \
        --kaldi_model=/kaldi/egs/swbd/s5c/exp/tri4_ali_nodup/final.mdl

The acoustic scale is chosen on the ``decode_valid`` export (dev), then every other export
(eval2000) is decoded at it and scored (GLM-mapped); in ``<output_folder>/kaldi`` it writes
``<set>/text``, ``<set>/ctm``, ``wer_<set>.txt`` and ``decode_summary.json``. No Kaldi binary runs.
"""

import json
import logging
import sys
from pathlib import Path

from loglike_exports import read_exported

from blend_modules.experiment import load_hparams
from blend_modules.hybrid.decoder import WordDecoder
from blend_modules.hybrid.kaldi_output import write_ctm, write_text
from blend_modules.hybrid.scoring import HybridWordErrors, fix_acoustic_scale

logger = logging.getLogger(__name__)

if __name__ == "__main__":
    hparams = load_hparams(sys.argv[1:]).hparams
    for key in ("kaldi_graph_folder", "kaldi_model"):
        if not hparams.get(key):
            raise ValueError(f"Decoding with a Kaldi graph needs --{key} (see README).")
    num_pdfs = hparams["targets"].num_labels  # the model's labels must be the graph's pdfs
    decoder = WordDecoder.from_kaldi(
        hparams["kaldi_graph_folder"],
        hparams["kaldi_model"],
        hparams["acoustic_scales"],
        hparams["decode_beam"],
        hparams["decode_max_active"],
        num_pdfs=num_pdfs,
    )
    kaldi_folder, exports = Path(hparams["output_folder"]) / "kaldi", dict(hparams["export_csv"])
    valid_name, frame_shift_s = hparams["decode_valid"], hparams["features"]["hop_length"] / 1000
    summary = {"graph": str(hparams["kaldi_graph_folder"]), "model": str(hparams["kaldi_model"])}
    for name in [valid_name] + [name for name in exports if name != valid_name]:  # valid first
        errors = HybridWordErrors(decoder, scoring_filter=hparams.get("scoring_filter"))
        segments = read_exported(kaldi_folder / name / "loglikes.scp", exports[name], num_pdfs)
        for utt_id, (loglikes, words, _) in segments.items():
            errors.add(utt_id, loglikes, words)
        stats = errors.summarize()  # valid: at every scale of the grid; the others at the chosen
        if name == valid_name:
            stats.update(fix_acoustic_scale(decoder, stats))
        else:
            errors.write(kaldi_folder, name)
            write_text(kaldi_folder / name / "text", errors.hypotheses)
            sides = {utt_id: side for utt_id, (_, _, side) in segments.items()}
            write_ctm(kaldi_folder / name / "ctm", errors.hypotheses, sides, frame_shift_s)
        summary.update({f"{name}_{key}": value for key, value in stats.items()})
        logger.info("%s: %s", name, {k: v for k, v in stats.items() if "at_scale" not in k})
    (kaldi_folder / "decode_summary.json").write_text(json.dumps(summary, indent=2))

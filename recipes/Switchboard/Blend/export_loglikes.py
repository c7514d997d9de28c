#!/usr/bin/env python3
"""Write a trained frame model's pseudo-log-likelihoods (log posterior - log prior) for Kaldi.

Run from this folder with the command line the model trained with, e.g.
    python export_loglikes.py hparams/cnn_blend.yaml $DATA $ALI
(``$DATA $ALI``: the data and alignment overrides of docs/SWITCHBOARD.md).

The best checkpoint runs over each manifest of ``export_csv`` (name -> manifest), writing
``<output_folder>/kaldi/<name>/loglikes.{ark,scp}``; the priors are the label counts of the
training alignments of the ``train_csv`` utterances, written as
``<output_folder>/kaldi/train_pdf.counts``. Decode them in Python with ``decode_loglikes.py``,
or with Kaldi's ``latgen-faster-mapped``. Nothing in the training folder is changed.
"""

import logging
import sys
from pathlib import Path

from blend_modules.data.alignments import read_alignments
from blend_modules.data.manifests import check_manifest
from blend_modules.experiment import load_hparams
from blend_modules.hybrid.kaldi_output import export_loglikes, write_counts
from blend_modules.hybrid.priors import label_counts, log_priors
from blend_modules.training.teacher import load_teacher

logger = logging.getLogger(__name__)

if __name__ == "__main__":
    experiment = load_hparams(sys.argv[1:])
    hparams, device = experiment.hparams, experiment.device
    targets, features = hparams["targets"], hparams["features"]
    if not hasattr(targets, "alignments"):
        raise ValueError("Exporting pseudo-log-likelihoods needs frame targets (alignments).")
    model = load_teacher(hparams["output_folder"], features, targets)

    # Label priors: the training alignments' label counts
    train_utterances = check_manifest(hparams["train_csv"], features["sample_rate"])
    alignments = read_alignments(targets.alignments["train"], targets.num_labels)
    counts = label_counts(alignments, targets.num_labels, set(train_utterances) & set(alignments))
    kaldi_folder = Path(hparams["output_folder"]) / "kaldi"
    kaldi_folder.mkdir(parents=True, exist_ok=True)
    write_counts(kaldi_folder / "train_pdf.counts", counts)
    logger.info("Priors from %d frames; %d labels never seen.", counts.sum(), (counts == 0).sum())

    for name, manifest in dict(hparams["export_csv"]).items():
        segments = check_manifest(manifest, features["sample_rate"])
        output = kaldi_folder / name / "loglikes"
        export_loglikes(
            model, features["compute_features"], segments, log_priors(counts), output, device
        )

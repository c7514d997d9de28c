#!/usr/bin/env python3
"""speechocean762: speed-perturbed copies (0.9 and 1.1) of the training set, a larger transfer
set for the teacher to label (blend_modules/data/perturbation.py):
    python perturb.py hparams/cnn.yaml [--key=value ...]
writes ``<prepared_folder>/speed_perturbed/train.csv`` (originals and copies) and
``stretched.ali`` (the originals' alignments, and the copies' stretched). Then the blended CNN
learns from the copies through the teacher's soft labels only (a store of its own: the teacher
labels the copies too):
    python train_blend.py hparams/cnn_blend.yaml --train_csv=<that train.csv> \
        --targets="{soft_only_unaligned: True}" --teacher_store=<a new folder> --model_name=...
and the control, hard labels on the same copies:
    python train_blend.py hparams/cnn.yaml --train_csv=<that train.csv> \
        --train_alignments=<that stretched.ali> --model_name=...
"""

import sys
from pathlib import Path

from blend_modules.data.perturbation import speed_perturb
from blend_modules.experiment import load_hparams, prepare_data

FACTORS = (0.9, 1.1)  # Kaldi's speed perturbation

if __name__ == "__main__":
    experiment = load_hparams(sys.argv[1:])
    hparams = experiment.hparams

    prepare_data(experiment)
    manifest, stretched = speed_perturb(
        hparams["train_csv"],
        hparams["train_alignments"],
        hparams["num_labels"],
        FACTORS,
        Path(hparams["prepared_folder"]) / "speed_perturbed",
        hop_ms=hparams["features"]["hop_length"],
    )
    print(f"{manifest}\n{stretched}")

#!/usr/bin/env python3
"""speechocean762: realign the training set with a trained frame-target model, as Kaldi's
``steps/nnet/align.sh`` does (blend_modules/targets/teacher_alignment.py), to retrain on the
realigned targets:
    python realign.py hparams/cnn_blend.yaml [--key=value ...]  # teacher_folder: the aligner
writes ``<prepared_folder>/realigned/<model>_<seed>/train.ali`` and ``realign.json``; then
    python train_teacher.py hparams/blstm.yaml --model_name=blstm_realigned \
        --train_alignments=<that train.ali> [--key=value ...]
Valid and test keep the forced aligner's alignments (frame accuracy stays comparable).
"""

import json
import sys
from pathlib import Path

from blend_modules.data.datasets import dataio_prepare
from blend_modules.experiment import load_hparams, prepare_data
from blend_modules.targets.teacher_alignment import realign_training_set
from blend_modules.training.teacher import load_teacher

if __name__ == "__main__":
    experiment = load_hparams(sys.argv[1:])
    hparams = experiment.hparams

    prepare_data(experiment)
    train = dataio_prepare(hparams)["train"]
    train.set_output_keys(["id", "sig", "words"])
    teacher_folder = Path(hparams["teacher_folder"])
    teacher = load_teacher(teacher_folder, hparams["features"], hparams["targets"])

    output = Path(hparams["prepared_folder"]) / "realigned"
    output = output / f"{teacher_folder.parent.name}_{teacher_folder.name}"
    output.mkdir(parents=True, exist_ok=True)
    stats = realign_training_set(
        teacher,
        train,
        hparams["features"],
        hparams["prepared_folder"],
        Path(hparams["corpus"]["data_folder"]) / "resource" / "lexicon.txt",
        output / "train.ali",
        self_loop_scale=hparams["corpus"]["self_loop_scale"],
    )
    (output / "realign.json").write_text(json.dumps({"teacher": str(teacher_folder), **stats}))
    print(json.dumps(stats))

#!/usr/bin/env python3
"""Evaluate the simple ensemble blending is compared with: the average of trained models'
posteriors (``ensemble_members``, by default the teacher and the hard-label CNN of one seed),
scored and decoded as each of them is. Trains nothing. Run after both trained:
    python evaluate_ensemble.py hparams/cnn_blend.yaml --model_name=ensemble
"""

import sys

from blend_modules.data.datasets import dataio_prepare
from blend_modules.experiment import (
    load_hparams,
    prepare_data,
    start_output_folder,
    test_and_summarize,
    write_summary,
)
from blend_modules.models.ensemble import PosteriorAverage
from blend_modules.training.brains import EnsembleBrain
from blend_modules.training.teacher import load_ensemble_members

if __name__ == "__main__":
    experiment = load_hparams(sys.argv[1:])
    hparams = experiment.hparams
    prepare_data(experiment)
    datasets = dataio_prepare(hparams)
    members, members_summary = load_ensemble_members(hparams)
    start_output_folder(experiment)

    ensemble_brain = EnsembleBrain(
        modules={"model": PosteriorAverage(members)}, hparams=hparams, run_opts=experiment.run_opts
    )
    # valid chooses the acoustic scale (frame targets), then every test set is scored
    summary = test_and_summarize(ensemble_brain, datasets, hparams, extra=members_summary)
    write_summary(hparams, summary)

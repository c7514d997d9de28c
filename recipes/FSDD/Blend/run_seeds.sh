#!/usr/bin/env bash
# Train the teacher once, then the CNN baseline and the blended CNN for each seed, all under
# one results folder, and print the results with the seed spread of blended - hard.
#   bash run_seeds.sh SEEDS RESULTS_FOLDER [--key=value ...]   (overrides go to every script)
# e.g. bash run_seeds.sh "1 2 3" results/clean --snr_db=null
set -euo pipefail
cd "$(dirname "$0")"
python=${PYTHON:-../../../.venv/bin/python}
seeds=$1
results=$2
shift 2
$python train_teacher.py hparams/blstm.yaml --results_folder="$results" "$@"
for seed in $seeds; do
    $python train_blend.py hparams/cnn.yaml --seed="$seed" --results_folder="$results" "$@"
    $python train_blend.py hparams/cnn_blend.yaml --seed="$seed" --results_folder="$results" "$@"
done
$python -m blend_modules.report "$results"

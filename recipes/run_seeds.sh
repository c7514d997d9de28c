#!/usr/bin/env bash
# Train a recipe's teacher once, then its CNN baseline and blended CNN for each seed, all under
# one results folder (relative to the recipe folder), and print the results table with the seed
# spread of blended - hard.
#   bash recipes/run_seeds.sh RECIPE TARGETS SEEDS RESULTS_FOLDER [--key=value ...]
# RECIPE: a recipe folder (e.g. recipes/FSDD/Blend); TARGETS: frame (hparams/blstm.yaml,
# cnn.yaml, cnn_blend.yaml) or ctc (the *_ctc variants); the overrides go to every script. E.g.
#   bash recipes/run_seeds.sh recipes/FSDD/Blend frame "1 2 3" results/noisy "--corpus={snr_db: [0, 15]}"
set -euo pipefail
python=${PYTHON:-$(cd "$(dirname "$0")/.." && pwd)/.venv/bin/python}
cd "$1"
case $2 in
    frame) suffix= ;;
    ctc) suffix=_ctc ;;
    *) echo "TARGETS must be frame or ctc, got '$2'" >&2; exit 2 ;;
esac
seeds=$3
results=$4
shift 4
$python train_teacher.py "hparams/blstm$suffix.yaml" --results_folder="$results" "$@"
for seed in $seeds; do
    $python train_blend.py "hparams/cnn$suffix.yaml" --seed="$seed" --results_folder="$results" "$@"
    $python train_blend.py "hparams/cnn${suffix}_blend.yaml" --seed="$seed" --results_folder="$results" "$@"
done
$python -m blend_modules.analysis.report "$results"

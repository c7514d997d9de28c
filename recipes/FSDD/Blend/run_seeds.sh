#!/usr/bin/env bash
# Train the teacher once, then the CNN baseline and the blended CNN for each seed, all under
# one results folder, and print the results with the seed spread of blended - hard.
#   bash run_seeds.sh TARGETS SEEDS RESULTS_FOLDER [--key=value ...]
# TARGETS: frame (hparams/blstm.yaml, cnn.yaml, cnn_blend.yaml) or ctc (the *_ctc variants);
# the overrides go to every script. E.g. bash run_seeds.sh frame "1 2 3" results/clean --snr_db=null
set -euo pipefail
cd "$(dirname "$0")"
python=${PYTHON:-../../../.venv/bin/python}
case $1 in
    frame) suffix= ;;
    ctc) suffix=_ctc ;;
    *) echo "TARGETS must be frame or ctc, got '$1'" >&2; exit 2 ;;
esac
seeds=$2
results=$3
shift 3
$python train_teacher.py "hparams/blstm$suffix.yaml" --results_folder="$results" "$@"
for seed in $seeds; do
    $python train_blend.py "hparams/cnn$suffix.yaml" --seed="$seed" --results_folder="$results" "$@"
    $python train_blend.py "hparams/cnn${suffix}_blend.yaml" --seed="$seed" --results_folder="$results" "$@"
done
$python -m blend_modules.report "$results"

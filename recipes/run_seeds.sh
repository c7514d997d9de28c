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
# The CNN and the blended CNN of a seed are independent once the teacher exists: side by side,
# half the cores each (the CNN's output in its own file, the blended CNN's here).
threads=$(( $(nproc) / 2 > 0 ? $(nproc) / 2 : 1 ))
for seed in $seeds; do
    cnn_log="$results/train_cnn$suffix.$seed.log"
    echo "CNN (hard labels), seed $seed: training beside the blended CNN, output in $cnn_log"
    OMP_NUM_THREADS=$threads $python train_blend.py "hparams/cnn$suffix.yaml" --seed="$seed" \
        --results_folder="$results" "$@" > "$cnn_log" 2>&1 &
    cnn=$!
    blend_status=0
    OMP_NUM_THREADS=$threads $python train_blend.py "hparams/cnn${suffix}_blend.yaml" \
        --seed="$seed" --results_folder="$results" "$@" || blend_status=$?
    wait $cnn || { echo "the CNN failed, seed $seed: see $cnn_log" >&2; exit 1; }
    [ $blend_status -eq 0 ] || exit $blend_status
done
$python -m blend_modules.analysis.report "$results"

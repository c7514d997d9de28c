#!/usr/bin/env bash
# Re-decode trained frame-target models under other decoder settings, without training: each
# model alone through evaluate_ensemble.py (an ensemble of one member is the model itself),
# valid choosing the acoustic scale and word insertion penalty, test decoded with them. Run from
# a recipe folder after its models trained (e.g. recipes/SpeechOcean762/Blend after run_demo.sh):
#   bash ../../../benchmarks/decoding_grid.sh RESULTS SEED GRID_NAME [--key=value ...]
# e.g. GRID_NAME sls0.1 with --corpus="{self_loop_scale: 0.1}"; summaries go to RESULTS/decoding/GRID_NAME/
# <model>/SEED/summary.json, tabulated by benchmarks/decoding_table.py. Runs one model at a
# time: they share the recipe's graph cache (rebuilt when the settings change it).
set -euo pipefail
results=$1 seed=$2 name=$3
shift 3
for model in blstm cnn cnn_blend; do
    python evaluate_ensemble.py hparams/cnn_blend.yaml --results_folder="$results" \
        --seed="$seed" --ensemble_members="[$results/$model/$seed]" \
        --model_name="decoding/$name/$model" "$@"
done

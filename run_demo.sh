#!/usr/bin/env bash
# From a clean clone: install, then on the embedded FSDD connected-digits corpus
# prepare -> BLSTM teacher -> CNN baseline -> blended CNN, and print the results table.
# Reruns skip what is done (prepared data, finished checkpoints). Extra arguments are passed
# to every training script as --key=value overrides.
set -euo pipefail
cd "$(dirname "$0")"
start=$(date +%s)
bash install.sh
echo "Installed in $(( $(date +%s) - start )) s."
bash recipes/FSDD/Blend/run_seeds.sh 1986 results "$@"
echo "Total (install + prepare + 3 trainings): $(( $(date +%s) - start )) s."

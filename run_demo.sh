#!/usr/bin/env bash
# From a clean clone: install, then on the embedded FSDD connected-digits corpus
# prepare -> BLSTM teacher -> CNN baseline -> blended CNN, and print the results table.
#   bash run_demo.sh          frame targets (the paper's hybrid setting), results/
#   bash run_demo.sh ctc      CTC targets (SentencePiece units, WER), results/ctc
# Reruns skip what is done (prepared data, finished checkpoints). Further arguments are passed
# to every training script as --key=value overrides.
set -euo pipefail
cd "$(dirname "$0")"
start=$(date +%s)
bash install.sh
echo "Installed in $(( $(date +%s) - start )) s."
targets=${1:-frame}
[ $# -gt 0 ] && shift
results=results
if [ "$targets" = ctc ]; then results=results/ctc; fi
bash recipes/FSDD/Blend/run_seeds.sh "$targets" 1986 "$results" "$@"
echo "Total (install + prepare + 3 trainings): $(( $(date +%s) - start )) s."

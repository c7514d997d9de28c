#!/usr/bin/env bash
# From a clean clone: install, then on an embedded corpus prepare -> BLSTM teacher -> CNN
# baseline -> blended CNN, and print the results table.
#   bash run_demo.sh                      speechocean762 (read speech, 48 speakers), senone
#                                         targets from a forced aligner: the paper's hybrid setting
#   bash run_demo.sh speechocean762 ctc   the same corpus, CTC targets (SentencePiece units, WER)
#   bash run_demo.sh fsdd [frame|ctc]     FSDD connected digits (6 speakers): a few minutes
# Results go to the recipe's results/ (results/ctc for CTC targets). Reruns skip what is done
# (prepared data, alignments, finished checkpoints). Further arguments are passed to every
# training script as --key=value overrides.
set -euo pipefail
cd "$(dirname "$0")"
start=$(date +%s)
corpus=${1:-speechocean762}
targets=${2:-frame}
shift $(( $# < 2 ? $# : 2 ))
case $corpus in
    speechocean762) recipe=recipes/SpeechOcean762/Blend ;;
    fsdd) recipe=recipes/FSDD/Blend ;;
    *) echo "corpus must be speechocean762 or fsdd, got '$corpus'" >&2; exit 2 ;;
esac
results=results
if [ "$targets" = ctc ]; then results=results/ctc; fi
bash install.sh
echo "Installed in $(( $(date +%s) - start )) s."
bash recipes/run_seeds.sh "$recipe" "$targets" 1986 "$results" "$@"
echo "Total (install + prepare + 3 trainings): $(( $(date +%s) - start )) s."

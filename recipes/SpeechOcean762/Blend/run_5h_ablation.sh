#!/usr/bin/env bash
# The 5-hour ablation of docs/SPEECHOCEAN762.md: each regulariser alone, one seed, for the BLSTM
# teacher or the CNN (one model per invocation, so that two run side by side on two cores):
#   bash run_5h_ablation.sh /path/to/speechocean762 teacher [condition ...]
#   bash run_5h_ablation.sh /path/to/speechocean762 cnn [condition ...]
# Without conditions, all of them in order. A condition may combine remedies with '+' (e.g.
# specaug+labels1500: the overrides of both). SEEDS (default 1986) runs each condition on each
# seed. Resumable: rerun the same command after a stop; a finished run (its summary.json) is
# skipped, an unfinished one resumes from its checkpoint. A run another invocation is training
# (its lock file held) is skipped too, so two invocations may share one list, one per core.
set -euo pipefail
cd "$(dirname "$0")"

SO=${1:?the whole speechocean762 corpus (upstream layout)}
MODEL=${2:?teacher or cnn}
shift 2
CORPUS="data_folder: $SO, valid_speakers: 15, test_speaker_list: hparams/test_speakers_2.9h.txt, test_half_trains: True"
COMMON=(--results_folder=results/5h_16k --sample_rate=16000 --number_of_epochs=12)
PYTHON=${PYTHON:-python}

case $MODEL in
    teacher) SCRIPT=train_teacher.py YAML=hparams/blstm.yaml PREFIX=blstm
        DROPOUT="--architecture={dropout: 0.4}" ;;
    cnn) SCRIPT=train_blend.py YAML=hparams/cnn.yaml PREFIX=cnn
        DROPOUT="--architecture={model: {dropout: 0.4}}" ;;
    *) echo "unknown model '$MODEL': teacher or cnn" >&2; exit 2 ;;
esac

# condition -> its overrides, '|' between them (the baseline: the recipe as it is)
declare -A OVERRIDES=(
    [base]=""
    [specaug]="--spec_augment=True"
    [uttnorm]="--normalize={norm_type: sentence}"
    [fixedlr]="--fixed_lr_schedule=True"
    [dropout_wd]="$DROPOUT|--weight_decay=0.05"
    [labels1500]="--prepared_folder=results/5h_16k/prepared_1500"
    # the training set realigned by the SpecAugment teacher (realign.py; valid and test keep
    # the forced aligner's alignments): combine with the remedies of that teacher
    [realigned]="--train_alignments=results/5h_16k/prepared/realigned/blstm_specaug_1986/train.ali"
)
# and what it adds to the corpus mapping: 1,500 labels (1,380 senones + 120 CI states),
# prepared apart from the 620 of the others
declare -A CORPUS_EXTRA=([labels1500]=", senones_kept: 1380")
CONDITIONS=("$@")
[ ${#CONDITIONS[@]} -gt 0 ] || CONDITIONS=(base specaug uttnorm fixedlr dropout_wd labels1500)

for condition in "${CONDITIONS[@]}"; do
    extra=() corpus_extra=""
    IFS='+' read -r -a remedies <<< "$condition"
    for remedy in "${remedies[@]}"; do
        [ -n "${OVERRIDES[$remedy]+set}" ] || { echo "unknown condition '$remedy'" >&2; exit 2; }
        IFS='|' read -r -a more <<< "${OVERRIDES[$remedy]}"
        extra+=("${more[@]}")
        corpus_extra+=${CORPUS_EXTRA[$remedy]:-}
    done
    name=${PREFIX}_$condition
    for seed in ${SEEDS:-1986}; do
        if [ -f "results/5h_16k/$name/$seed/summary.json" ]; then
            echo "$name seed $seed: done"
            continue
        fi
        mkdir -p results/5h_16k
        exec 9> "results/5h_16k/$name.$seed.lock"  # held by the training until its end
        if ! flock -n 9; then
            echo "$name seed $seed: training in another process"
            continue
        fi
        echo "$name seed $seed: $PYTHON $SCRIPT $YAML ${extra[*]}"
        "$PYTHON" "$SCRIPT" "$YAML" "--corpus={$CORPUS$corpus_extra}" "${COMMON[@]}" \
            --model_name="$name" --seed="$seed" "${extra[@]}"
        exec 9>&-
    done
done

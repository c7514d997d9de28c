#!/usr/bin/env bash
# The paper's study on a recipe (issue 13), resumable and sequential: a run whose summary.json
# exists is skipped, a killed run resumes from its checkpoints when this command is run again.
#   bash recipes/run_study.sh RECIPE frame NUM_LABELS [--key=value ...]
#   bash recipes/run_study.sh RECIPE ctc [--key=value ...]
# e.g. bash recipes/run_study.sh recipes/SpeechOcean762/Blend frame 620
# Runs go to <recipe>/results/study[_ctc]/<condition>/<seed>/ (the recipe's prepared data is
# shared with its demo), logs to results/study[_ctc]/logs/; the CSV, tables and plots to
# docs/study/<corpus>[_ctc]/ (python -m blend_modules.analysis.study).
# Frame targets: the headline (teacher, CNN, their posteriors averaged (the ensemble), blended
# CNN at λ 0.5, k 10, T 1; SEEDS, each student learning from the teacher of its own seed), then
# at seed 1986: λ ∈ {0, 0.25, 0.75}; a student of about a sixth of the teacher's FLOPs
# (small_cnn, small_blend at the best λ); k ∈ {1, 3, 1% of the labels, 30, 100, all} at the best
# λ; T ∈ {2, 4} at the best λ and k (best: on valid, python -m blend_modules.analysis.study best). Then
# the remedies for a blend that does not beat the baselines (SEEDS): a stronger teacher
# (16 epochs instead of 8) and longer student training (16 epochs), at λ 0.5, k 10, T 1, with
# the 16-epoch teacher's and CNN's ensemble as the baseline to beat.
# CTC targets: teacher, CNN, ensemble and three blended CNNs at the YAML's λ, k, T (SEEDS), one
# per soft term: frames (the paper's), nonblank_frames and ctc_best_path.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
python=${PYTHON:-$repo/.venv/bin/python}
seeds=${SEEDS:-"1986 1 2"}
cd "$1"
corpus=$(basename "$(dirname "$(pwd)")")
targets=$2
shift 2
case $targets in
    frame) num_labels=$1; shift; study=results/study; suffix= ;;
    ctc) study=results/study_ctc; suffix=_ctc ;;
    *) echo "targets must be frame or ctc, not '$targets'" >&2; exit 2 ;;
esac
mkdir -p "$study/logs"

run() {  # run SCRIPT YAML CONDITION SEED [--key=value ...]
    local script=$1 yaml=$2 condition=$3 seed=$4
    shift 4
    if [ -f "$study/$condition/$seed/summary.json" ]; then
        echo "done     $condition seed $seed"
        return
    fi
    echo "$(date +%T) running $condition seed $seed (log: $study/logs/$condition.$seed.log)"
    $python "$script" "hparams/$yaml" --results_folder="$study" --prepared_folder=results/prepared \
        --model_name="$condition" --seed="$seed" "$@" > "$study/logs/$condition.$seed.log" 2>&1
}

blend() {  # blend SEED CONDITION TEACHER [--key=value ...]: a student of the TEACHER condition
    local seed=$1 condition=$2 teacher=$3
    shift 3
    run train_blend.py "cnn${suffix}_blend.yaml" "$condition" "$seed" \
        --teacher_folder="$study/$teacher/$seed" "$@"
}

ensemble() {  # ensemble SEED CONDITION TEACHER CNN [--key=value ...]: their posteriors averaged
    local seed=$1 condition=$2 teacher=$3 cnn=$4
    shift 4
    run evaluate_ensemble.py "cnn${suffix}_blend.yaml" "$condition" "$seed" \
        --ensemble_members="[$study/$teacher/$seed, $study/$cnn/$seed]" "$@"
}

frame_blend() {  # frame_blend SEED HARD_WEIGHT TOP_K TEMPERATURE [--key=value ...]
    local seed=$1 weight=$2 k=$3 temperature=$4
    shift 4
    blend "$seed" "blend_l${weight}_k${k}_T${temperature}" blstm \
        --hard_weight="$weight" --top_k="$k" --temperature="$temperature" "$@"
}

for seed in $seeds; do
    run train_teacher.py "blstm$suffix.yaml" blstm "$seed" "$@"
    run train_blend.py "cnn$suffix.yaml" cnn "$seed" "$@"
    ensemble "$seed" ensemble blstm cnn "$@"
    if [ "$targets" = ctc ]; then
        for soft_loss in frames nonblank_frames ctc_best_path; do
            blend "$seed" "blend_$soft_loss" blstm --soft_loss="$soft_loss" "$@"
        done
    else
        frame_blend "$seed" 0.5 10 1.0 "$@"
    fi
done
if [ "$targets" = frame ]; then
    for weight in 0.0 0.25 0.75; do
        frame_blend 1986 "$weight" 10 1.0 "$@"
    done
    # a student of about a sixth of the teacher's FLOPs (hparams/models/vgg_narrow.yaml), on hard
    # labels and blended at the best λ: does blending bring it to the teacher (issue 14)?
    read -r weight k temperature < <($python -m blend_modules.analysis.study best "$study")
    narrow=$($python -m blend_modules.data.hparams "$repo/hparams/models/vgg_narrow.yaml")
    run train_blend.py cnn.yaml small_cnn 1986 --architecture="$narrow" "$@"
    blend 1986 small_blend blstm --architecture="$narrow" --hard_weight="$weight" --top_k="$k" \
        --temperature="$temperature" "$@"
    # k, log-spaced from 1 to every label, at the best λ (small_* are not candidates, so still
    # the one read above); one store of the teacher's top NUM_LABELS serves them all (the full
    # distribution included)
    ks=$(printf '%s\n' 1 3 $(( (num_labels + 99) / 100 )) 30 100 "$num_labels" | awk -v n="$num_labels" '$1 <= n' | sort -nu)
    for k in $ks; do
        frame_blend 1986 "$weight" "$k" 1.0 --teacher_store_top_k="$num_labels" "$@"
    done
    # T at the best λ and k
    read -r weight k _ < <($python -m blend_modules.analysis.study best "$study")
    for temperature in 2.0 4.0; do
        frame_blend 1986 "$weight" "$k" "$temperature" --teacher_store_top_k="$num_labels" "$@"
    done
    # remedies (conditions remedy_*, not candidates for the best blend), every seed: a teacher,
    # a CNN, their ensemble and a blended CNN all trained twice as long, then the 8-epoch
    # student of that teacher
    for seed in $seeds; do
        run train_teacher.py blstm.yaml remedy_teacher_16ep "$seed" --number_of_epochs=16 "$@"
        run train_blend.py cnn.yaml remedy_cnn_16ep "$seed" --number_of_epochs=16 "$@"
        blend "$seed" remedy_blend_16ep_teacher_16ep remedy_teacher_16ep --number_of_epochs=16 "$@"
        blend "$seed" remedy_blend_teacher_16ep remedy_teacher_16ep "$@"
        ensemble "$seed" remedy_ensemble_16ep remedy_teacher_16ep remedy_cnn_16ep "$@"
    done
fi
$python -m blend_modules.analysis.study "$study" "$repo/docs/study/$corpus$suffix" \
    ${num_labels:+--num_labels="$num_labels"} --test_manifest=results/prepared/test.csv
echo "Study outputs in docs/study/$corpus$suffix/"

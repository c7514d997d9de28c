#!/usr/bin/env bash
# The paper's study on a recipe (issues 13, 27), resumable and sequential: a run whose
# summary.json exists is skipped, a killed run resumes from its checkpoints when this command
# is run again.
#   bash recipes/run_study.sh RECIPE frame NUM_LABELS [--key=value ...]
#   bash recipes/run_study.sh RECIPE ctc [--key=value ...]
# e.g. bash recipes/run_study.sh recipes/SpeechOcean762/Blend frame 620
# Runs go to <recipe>/$STUDY/<condition>/<seed>/ (default results/study[_ctc]; the prepared data,
# $PREPARED, default results/prepared, is shared with the demo), logs to $STUDY/logs/; the CSV,
# tables and plots to $DOCS (default docs/study/<corpus>[_ctc]; python -m
# blend_modules.analysis.study). The overrides go to every run (e.g. the 2.9-hour corpus).
# Frame targets: the headline (teacher, CNN, their posteriors averaged (the ensemble), blended
# CNN at λ 0.5, k 10, T 1; SEEDS, each student learning from the teacher of its own seed), then
# at the first seed: λ ∈ {0, 0.25, 0.75}, k ∈ {1, 3, 1% of the labels, 30, 100, all} at the
# best λ, T ∈ {2, 4} at the best λ and k (best: on valid, compared on the seed every candidate
# ran: python -m blend_modules.analysis.study best), and the chosen setting on every seed.
# TOP_KS and TEMPERATURES replace those k and T lists (e.g. TOP_KS="1 6 620" TEMPERATURES=2.0
# where the CPU-hours are short; TEMPERATURES="" sweeps no T).
# Then the REMEDIES (conditions remedy_* and small_*, never candidates for the best blend), in
# the order given (default "small longer", the 37-minute study's):
#   small      a student of about a sixth of the teacher's FLOPs (vgg_narrow), hard and blended
#              at the best setting, first seed (small_cnn, small_blend)
#   longer     a teacher, a CNN, their ensemble and a blended CNN trained twice as long, and the
#              8-epoch student of that teacher, every seed
#   ensemble   the CNN blended from the teacher's and the CNN's averaged posteriors, every seed
#   perturbed  speed-perturbed copies (0.9, 1.1) of the training set: the CNN blended with the
#              teacher's soft labels on them, and the hard-label control on their stretched
#              alignments, every seed; an epoch is 3 of the others' (PERTURBED_EPOCHS=4 against
#              12 gives them as many updates)
#   small_ensemble  the vgg_narrow student, hard and blended from the ensemble, every seed
#   larger     a larger teacher (blstm_large, 3 layers against 2) and the CNN blended from it,
#              first seed
# CTC targets: teacher, CNN, ensemble and three blended CNNs at the YAML's λ, k, T (SEEDS), one
# per soft term: frames (the paper's), nonblank_frames and ctc_best_path.
# JOBS=2 runs two at a time where nothing orders them (e.g. two cores, OMP_NUM_THREADS=1 each):
# the first teacher alone, then the teachers and CNNs, then ensembles and blends, each sweep,
# each remedy; a slot a stage leaves free (e.g. a sweep's single run) goes to the remedies'
# runs that need no chosen setting (their hard-label CNNs, the larger teachers). The order of
# the runs does not change their results.
{  # the whole script is read before it runs: editing it cannot derail a study in progress
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
python=${PYTHON:-$repo/.venv/bin/python}
seeds=${SEEDS:-"1986 1 2"}
cd "$1"
corpus=$(basename "$(dirname "$(pwd)")")
targets=$2
shift 2
case $targets in
    frame) num_labels=$1; shift; suffix= ;;
    ctc) suffix=_ctc ;;
    *) echo "targets must be frame or ctc, not '$targets'" >&2; exit 2 ;;
esac
study=${STUDY:-results/study$suffix}
prepared=${PREPARED:-results/prepared}
docs=${DOCS:-$repo/docs/study/$corpus$suffix}
remedies=${REMEDIES:-"small longer"}
overrides=("$@")
mkdir -p "$study/logs"

run() {  # run SCRIPT YAML CONDITION SEED [--key=value ...]
    local script=$1 yaml=$2 condition=$3 seed=$4
    shift 4
    if [ -f "$study/$condition/$seed/summary.json" ]; then
        echo "done     $condition seed $seed"
        return
    fi
    echo "$(date +%T) running $condition seed $seed (log: $study/logs/$condition.$seed.log)"
    $python "$script" "hparams/$yaml" --results_folder="$study" --prepared_folder="$prepared" \
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

jobs_max=${JOBS:-1}
pids=()
fillers=()  # "REMEDY FUNCTION SEED": runs that wait for no other stage, for the slots stages leave
filler_pids=()
spawn() {  # spawn COMMAND...: run it beside the others, at most JOBS at once (JOBS=1: now)
    if [ "$jobs_max" -le 1 ]; then
        "$@"
        return
    fi
    while [ "$(jobs -rp | wc -l)" -ge "$jobs_max" ]; do sleep 1; done
    "$@" &
    pids+=($!)
}
running() {  # running PID...: whether one of them still runs
    local pid
    for pid in "$@"; do
        if kill -0 "$pid" 2>/dev/null; then return 0; fi
    done
    return 1
}
collect() {  # collect PID...: wait for them; stop the study if one failed
    local pid failed=0
    for pid in "$@"; do wait "$pid" || failed=1; done
    if [ "$failed" = 1 ]; then
        echo "a run failed: its log is in $study/logs/" >&2
        wait  # a filler in progress ends (it resumes the next time otherwise)
        exit 1
    fi
}
drop_fillers() {  # drop_fillers REMEDY: its fillers that did not start run in its own stage
    local filler kept=()
    for filler in "${fillers[@]}"; do
        [[ $filler == "$1 "* ]] || kept+=("$filler")
    done
    fillers=("${kept[@]}")
}
barrier() {  # wait for the stage's runs, giving a slot they leave free to the next filler
    local filler
    while running "${pids[@]}"; do
        if [ "$(jobs -rp | wc -l)" -lt "$jobs_max" ] && [ ${#fillers[@]} -gt 0 ]; then
            filler=${fillers[0]}
            fillers=("${fillers[@]:1}")
            ${filler#* } &  # word-split: the function and its seed
            filler_pids+=($!)
        fi
        sleep 1
    done
    collect "${pids[@]}"
    pids=()
}

# The first teacher runs alone: it prepares the data and builds the decoding graph the others
# share. Runs that would write the same teacher store never run at once.
first=${seeds%% *}
run train_teacher.py "blstm$suffix.yaml" blstm "$first" "$@"
if [ "$targets" = frame ]; then  # the remedies' runs that wait for no chosen setting: fillers
    narrow=$($python -m blend_modules.data.hparams "$repo/hparams/models/vgg_narrow.yaml")
    large=$($python -m blend_modules.data.hparams "$repo/hparams/models/blstm_large.yaml")
    copies=$prepared/speed_perturbed
    perturbed_args=("$@")  # PERTURBED_EPOCHS replaces the others' epochs
    if [ -n "${PERTURBED_EPOCHS:-}" ]; then
        perturbed_args=(--number_of_epochs="$PERTURBED_EPOCHS")
        for arg in "$@"; do
            [[ $arg == --number_of_epochs=* ]] || perturbed_args+=("$arg")
        done
    fi
    cnn_perturbed() {  # cnn_perturbed SEED: remedy (b)'s control, hard labels on the copies
        run train_blend.py cnn.yaml remedy_cnn_perturbed "$1" --train_csv="$copies/train.csv" \
            --train_alignments="$copies/stretched.ali" "${perturbed_args[@]}"
    }
    cnn_small() {  # cnn_small SEED: the small student on hard labels
        run train_blend.py cnn.yaml remedy_cnn_small "$1" --architecture="$narrow" "${overrides[@]}"
    }
    teacher_large() {  # teacher_large SEED: the larger teacher
        run train_teacher.py blstm.yaml remedy_teacher_large "$1" --architecture="$large" "${overrides[@]}"
    }
    for remedy in $remedies; do
        case $remedy in
            perturbed)
                $python perturb.py hparams/cnn.yaml --prepared_folder="$prepared" "$@" > "$study/logs/perturb.log" 2>&1
                for seed in $seeds; do fillers+=("$remedy cnn_perturbed $seed"); done ;;
            small_ensemble) for seed in $seeds; do fillers+=("$remedy cnn_small $seed"); done ;;
            larger) fillers+=("$remedy teacher_large $first") ;;
        esac
    done
fi
for seed in $seeds; do
    spawn run train_teacher.py "blstm$suffix.yaml" blstm "$seed" "$@"
    spawn run train_blend.py "cnn$suffix.yaml" cnn "$seed" "$@"
done
barrier
ctc_blends() {  # ctc_blends SEED [--key=value ...]: one after another (one teacher store)
    local seed=$1 soft_loss
    shift
    for soft_loss in frames nonblank_frames ctc_best_path; do
        blend "$seed" "blend_$soft_loss" blstm --soft_loss="$soft_loss" "$@"
    done
}
for seed in $seeds; do
    spawn ensemble "$seed" ensemble blstm cnn "$@"
    if [ "$targets" = ctc ]; then
        spawn ctc_blends "$seed" "$@"
    else
        spawn frame_blend "$seed" 0.5 10 1.0 "$@"
    fi
done
barrier
if [ "$targets" = frame ]; then
    best() { $python -m blend_modules.analysis.study best "$study"; }
    for weight in 0.0 0.25 0.75; do
        spawn frame_blend "$first" "$weight" 10 1.0 "$@"
    done
    barrier
    # k, log-spaced from 1 to every label, at the best λ; one store of the teacher's top
    # NUM_LABELS serves them all (the full distribution included): the first run writes it
    read -r weight _ _ < <(best)
    ks=${TOP_KS:-$(printf '%s\n' 1 3 $(( (num_labels + 99) / 100 )) 30 100 "$num_labels" | awk -v n="$num_labels" '$1 <= n' | sort -nu)}
    for k in $ks; do
        spawn frame_blend "$first" "$weight" "$k" 1.0 --teacher_store_top_k="$num_labels" "$@"
        [ "$k" != "${ks%%[[:space:]]*}" ] || barrier
    done
    barrier
    # T at the best λ and k, then the chosen setting on every seed
    read -r weight k _ < <(best)
    for temperature in ${TEMPERATURES-2.0 4.0}; do  # TEMPERATURES="": no T sweep
        spawn frame_blend "$first" "$weight" "$k" "$temperature" --teacher_store_top_k="$num_labels" "$@"
    done
    barrier
    read -r weight k temperature < <(best)
    chosen=(--hard_weight="$weight" --top_k="$k" --temperature="$temperature")
    store_k=$(( k > 64 ? num_labels : 64 ))  # the YAMLs' store keeps 64 labels per frame
    for seed in $seeds; do
        spawn frame_blend "$seed" "$weight" "$k" "$temperature" --teacher_store_top_k="$store_k" "$@"
    done
    barrier
    longer() {  # longer SEED [--key=value ...]: the 16-epoch teacher first, its students after
        local seed=$1
        shift
        run train_teacher.py blstm.yaml remedy_teacher_16ep "$seed" --number_of_epochs=16 "$@"
        run train_blend.py cnn.yaml remedy_cnn_16ep "$seed" --number_of_epochs=16 "$@"
        blend "$seed" remedy_blend_16ep_teacher_16ep remedy_teacher_16ep --number_of_epochs=16 "$@"
        blend "$seed" remedy_blend_teacher_16ep remedy_teacher_16ep "$@"
        ensemble "$seed" remedy_ensemble_16ep remedy_teacher_16ep remedy_cnn_16ep "$@"
    }
    larger() {  # larger SEED [--key=value ...]: the larger teacher first, its student after
        local seed=$1
        shift
        teacher_large "$seed"
        blend "$seed" remedy_blend_large_teacher remedy_teacher_large "${chosen[@]}" "$@"
    }
    for remedy in $remedies; do
        # the fillers that started end first, and the remedy runs its own that did not start
        collect "${filler_pids[@]}"
        filler_pids=()
        drop_fillers "$remedy"
        case $remedy in
            small)
                spawn run train_blend.py cnn.yaml small_cnn "$first" --architecture="$narrow" "$@"
                spawn blend "$first" small_blend blstm --architecture="$narrow" "${chosen[@]}" "$@" ;;
            longer)
                for seed in $seeds; do
                    spawn longer "$seed" "$@"
                done ;;
            ensemble)
                for seed in $seeds; do
                    spawn run train_blend.py cnn_blend.yaml remedy_blend_from_ensemble "$seed" "${chosen[@]}" \
                        --teacher_folder="[$study/blstm/$seed, $study/cnn/$seed]" \
                        --teacher_store="$study/remedy_blend_from_ensemble/$seed/store" "$@"
                done ;;
            perturbed)
                for seed in $seeds; do
                    spawn cnn_perturbed "$seed"
                    spawn blend "$seed" remedy_blend_perturbed blstm "${chosen[@]}" --train_csv="$copies/train.csv" \
                        --targets="{soft_only_unaligned: True}" \
                        --teacher_store="$study/remedy_blend_perturbed/$seed/store" "${perturbed_args[@]}"
                done ;;
            small_ensemble)
                for seed in $seeds; do
                    spawn cnn_small "$seed"
                    spawn run train_blend.py cnn_blend.yaml remedy_blend_small_from_ensemble "$seed" \
                        --architecture="$narrow" "${chosen[@]}" \
                        --teacher_folder="[$study/blstm/$seed, $study/cnn/$seed]" \
                        --teacher_store="$study/remedy_blend_from_ensemble/$seed/store" "$@"
                done ;;
            larger) spawn larger "$first" "$@" ;;
            *) echo "unknown remedy '$remedy'" >&2; exit 2 ;;
        esac
        barrier
    done
fi
$python -m blend_modules.analysis.study "$study" "$docs" \
    ${num_labels:+--num_labels="$num_labels"} --test_manifest="$prepared/test.csv"
echo "Study outputs in $docs/"
exit
}

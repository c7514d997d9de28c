"""The study runner (blend_modules/study/runner.py) on the frame study's plan, with a stand-in
for Python that records each run instead of training: every run of the study happens once;
with --jobs 2 two run at once (the remedies' runs that wait for no chosen setting in the slots
the sweeps leave), a student never starts before its teacher (or an ensemble before its
members) has finished, and the first run that writes a teacher store finishes before another
run of that store starts; a failed run stops the study; a second invocation runs nothing.
And the plan's comparisons against the tables the 2.9-hour study's runs were given."""

import csv
import json
import os
import re
import subprocess
import sys
from collections import defaultdict

import pytest
from conftest import REPO

from blend_modules.study.plans import frame_study
from blend_modules.study.runner import StudyRunner

# Stands in for "python": a training script writes its run's summary.json after a short sleep
# (start and end recorded), with the blend's settings; the headline blend (λ 0.5, k 10, T 1)
# has the lowest valid WER, so every decision chooses it.
STAND_IN = r"""
import json, os, sys, time
from pathlib import Path
args = sys.argv[1:]
if args[0] == "-m":  # a preparation step: the real module
    import runpy
    sys.argv = args[1:]
    runpy.run_module(args[1], run_name="__main__")
    sys.exit(0)
options = dict(arg[2:].split("=", 1) for arg in args[2:] if arg.startswith("--"))
if args[0] == "perturb.py":
    copies = Path(options["prepared_folder"]) / "speed_perturbed"
    copies.mkdir(parents=True, exist_ok=True)
    for name in ("train.csv", "stretched.ali"):
        (copies / name).write_text("")
    sys.exit(0)
condition, seed = options["model_name"], options["seed"]
if condition == os.environ.get("FAIL_CONDITION"):
    sys.exit(1)
start = time.time()
time.sleep(0.3)
run = Path(options["results_folder"]) / condition / seed
run.mkdir(parents=True, exist_ok=True)
record = {"script": args[0], "condition": condition, "seed": seed, "start": start,
          "end": time.time(), "options": options}
with open(os.environ["RUN_RECORD"], "a") as record_file:
    record_file.write(json.dumps(record) + "\n")
summary = {"seed": int(seed), "valid_WER": 10.0 if condition == "blend_l0.5_k10_T1.0" else 20.0,
           "test_WER": 30.0, "valid_frame_acc": 0.5, "test_frame_acc": 0.5,
           "history": [{"epoch": 1, "valid": {"frame_acc": 0.5}, "train": {"frame_acc": 0.6}}]}
for key, kind in (("hard_weight", float), ("top_k", int), ("temperature", float)):
    if key in options:
        summary[key] = kind(options[key])
(run / "summary.json").write_text(json.dumps(summary))
"""

OPTIONS = [
    "--num_labels=620",
    "--top_ks", "1", "7", "620",
    "--temperatures", "2.0",
    "--remedies", "ensemble", "perturbed", "small_ensemble", "larger",
    "--perturbed_epochs=4",
]  # fmt: skip


def study(tmp_path, jobs: int, *options, **environment):
    recipe = tmp_path / "Corpus" / "Blend"
    (recipe / "results" / "prepared").mkdir(parents=True, exist_ok=True)
    (recipe / "results" / "prepared" / "test.csv").write_text("ID,duration,wav,spk_id\n")
    stand_in = tmp_path / "stand_in.py"
    stand_in.write_text(STAND_IN)
    record = tmp_path / "runs.jsonl"
    command = [sys.executable, "-m", "blend_modules.study.runner", str(recipe), "frame"]
    command += [*OPTIONS, *options, f"--jobs={jobs}", "--poll_s=0.05", "--sample_rate=16000"]
    command += [f"--python={sys.executable} {stand_in}", f"--docs={tmp_path / 'docs'}"]
    env = dict(os.environ, RUN_RECORD=str(record), **environment)
    result = subprocess.run(
        command, env=env, cwd=REPO, capture_output=True, text=True, timeout=300, check=False
    )
    runs = [json.loads(line) for line in record.read_text().splitlines()] if record.exists() else []
    return result, runs


def store_of(run) -> str:
    """The teacher store a blended run reads (and writes, if it is the first)."""
    options = run["options"]
    if "teacher_store" in options:
        return options["teacher_store"]
    return f"{options['teacher_folder']}/store_top{options.get('teacher_store_top_k', 64)}"


@pytest.mark.parametrize("jobs", [1, 2])
def test_every_run_once_and_in_order(tmp_path, jobs):
    result, runs = study(tmp_path, jobs)
    assert result.returncode == 0, result.stderr
    names = [(run["condition"], run["seed"]) for run in runs]
    # headline, λ, k, T (the chosen setting is the headline's), four remedies (one at one seed)
    assert len(names) == len(set(names)) == 3 * 4 + 3 + 3 + 1 + 3 + 3 * 2 * 2 + 2
    assert "chosen   temperature: blend_l0.5_k10_T1.0" in result.stdout
    # at most JOBS at once, and JOBS reached
    events = sorted([(run["start"], 1) for run in runs] + [(run["end"], -1) for run in runs])
    running = [sum(change for _, change in events[: i + 1]) for i in range(len(events))]
    assert max(running) == jobs
    # with two slots the remedies' runs that need no chosen setting fill the slots the sweeps
    # leave free (the k sweep's first run writes its store alone) before the remedies that
    # need the chosen setting begin; with one they wait their turn
    fillers = ("remedy_cnn_perturbed", "remedy_cnn_small", "remedy_teacher_large")
    first_filler = min(run["start"] for run in runs if run["condition"] in fillers)
    remedies_begin = min(
        run["start"] for run in runs if run["condition"] == "remedy_blend_from_ensemble"
    )
    assert (first_filler < remedies_begin) == (jobs == 2)
    ended = {(run["condition"], run["seed"]): run["end"] for run in runs}
    by_folder = {f"results/study/{c}/{s}": end for (c, s), end in ended.items()}
    for run in runs:
        options = run["options"]
        assert options["sample_rate"] == "16000"  # the study's overrides reach every run
        for folder in options.get("teacher_folder", "").strip("[]").split(", "):
            if folder:
                assert by_folder[folder] <= run["start"], (run["condition"], folder)
        for member in options.get("ensemble_members", "").strip("[]").split(", "):
            if member:
                assert by_folder[member] <= run["start"], (run["condition"], member)
        if "perturbed" in run["condition"]:  # its epochs replace the study's
            assert options["number_of_epochs"] == "4"
    first_of_store = defaultdict(list)
    for run in runs:
        if run["script"] == "train_blend.py" and "teacher_folder" in run["options"]:
            first_of_store[store_of(run)].append(run)
    for store, readers in first_of_store.items():
        writer, *others = sorted(readers, key=lambda run: run["start"])
        assert all(writer["end"] <= other["start"] for other in others), store
    # the k sweep ran at the chosen λ from one store of every label
    k_sweep = [
        run for run in runs if re.fullmatch(r"blend_l0\.5_k(1|7|620)_T1\.0", run["condition"])
    ]
    assert {run["options"]["teacher_store_top_k"] for run in k_sweep} == {"620"}
    plan = json.loads((tmp_path / "Corpus/Blend/results/study/plan.json").read_text())
    assert ["blend_l0.5_k1_T1.0", "blend_l0.5_k620_T1.0"] in plan["comparisons"]
    assert (tmp_path / "docs" / "tables.md").is_file()
    # run again: everything has finished, nothing runs, the outputs are written again
    (tmp_path / "docs" / "tables.md").unlink()
    again, more = study(tmp_path, jobs)
    assert again.returncode == 0 and len(more) == len(runs)
    assert (tmp_path / "docs" / "tables.md").is_file()


def test_no_temperature_sweep(tmp_path):
    """No temperatures (CPU-hours short) skips the T sweep; the chosen setting still runs."""
    result, runs = study(tmp_path, 2, "--temperatures")
    assert result.returncode == 0, result.stderr
    assert not [run for run in runs if run["options"].get("temperature") == "2.0"]
    assert len(runs) == 3 * 4 + 3 + 3 + 3 + 3 * 2 * 2 + 2


def test_a_failed_run_stops_the_study(tmp_path):
    result, runs = study(tmp_path, 2, FAIL_CONDITION="cnn")
    assert result.returncode == 1
    assert "a run failed: its log is in results/study/logs/ (cnn." in result.stderr
    assert {run["condition"] for run in runs} == {"blstm"}  # nothing after the CNNs


def test_a_run_that_writes_no_summary_fails(tmp_path):
    """A script that exits 0 without its summary.json (or a step without its outputs) is a
    failure, not a run to start again for ever."""
    stand_in = tmp_path / "silent.py"
    stand_in.write_text("")
    runner = StudyRunner(
        frame_study(620, remedies=[]),
        tmp_path,
        "study",
        "prepared",
        [1986],
        python=[sys.executable, str(stand_in)],
        poll_s=0.05,
    )
    with pytest.raises(RuntimeError, match=r"a run failed: .*\(blstm\.1986\.log\)"):
        runner.run()


def test_the_plan_compares_what_the_2_9_hour_study_compared(tmp_path):
    """The frame plan with the 2.9-hour study's options, its decisions made from that study's
    runs (docs/study/speechocean762_2.9h/runs.csv), gives the paired comparisons its tables
    (written by the name-parsing analysis before the plan existed) hold: no more, no fewer."""
    folder = REPO / "docs" / "study" / "speechocean762_2.9h"
    with open(folder / "runs.csv", newline="") as csv_file:
        rows = list(csv.DictReader(csv_file))
    for row in rows:
        run = tmp_path / "study" / row["condition"] / row["seed"]
        run.mkdir(parents=True)
        summary = {"seed": int(row["seed"]), "valid_WER": float(row["valid_WER"])}
        for key, kind in (("hard_weight", float), ("top_k", int), ("temperature", float)):
            if row[key]:
                summary[key] = kind(row[key])
        (run / "summary.json").write_text(json.dumps(summary))
    plan = frame_study(
        620, [1, 6, 620], [], ["ensemble", "perturbed", "small_ensemble", "larger"],
        {"vgg_narrow": "{}", "blstm_large": "{}"}, 4,
    )  # fmt: skip
    runner = StudyRunner(plan, tmp_path, "study", "prepared", [1986, 1, 2])
    conditions = {row["condition"] for row in rows}
    planned = {pair for pair in runner.comparisons() if set(pair) <= conditions}
    tables = (folder / "tables.md").read_text()
    tabled = set(re.findall(r"^\| (\S+) − (\S+) \| test WER \| \d", tables, re.MULTILINE))
    assert planned == tabled


def test_ctc_study(tmp_path):
    """CTC targets: the headline and one blended CNN per soft term on every seed; the three
    blends of a seed share their teacher's store: the first has written it before the others
    start."""
    recipe = tmp_path / "Corpus" / "Blend"
    (recipe / "results" / "prepared").mkdir(parents=True)
    (recipe / "results" / "prepared" / "test.csv").write_text("ID,duration,wav,spk_id\n")
    (tmp_path / "stand_in.py").write_text(STAND_IN)
    command = [sys.executable, "-m", "blend_modules.study.runner", str(recipe), "ctc", "--jobs=2"]
    command += ["--poll_s=0.05", f"--python={sys.executable} {tmp_path / 'stand_in.py'}"]
    command += [f"--docs={tmp_path / 'docs'}"]
    env = dict(os.environ, RUN_RECORD=str(tmp_path / "runs.jsonl"))
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    runs = [json.loads(line) for line in (tmp_path / "runs.jsonl").read_text().splitlines()]
    assert len(runs) == 6 * 3
    assert {run["options"]["soft_loss"] for run in runs if "soft_loss" in run["options"]} == {
        "frames",
        "nonblank_frames",
        "ctc_best_path",
    }
    assert {run["script"] for run in runs if run["condition"] == "ensemble"} == {
        "evaluate_ensemble.py"
    }
    for seed in ("1986", "1", "2"):
        blends = sorted(
            (run["start"], run["end"])
            for run in runs
            if run["seed"] == seed and run["condition"].startswith("blend")
        )
        (_, writer_end), *readers = blends  # the first writes the store the others read
        assert all(writer_end <= start for start, _ in readers)
    plan = json.loads((recipe / "results" / "study_ctc" / "plan.json").read_text())
    assert ["blend_frames", "ensemble"] in plan["comparisons"]


def test_the_honest_labels_study(tmp_path):
    """Issue 38's plan: the folds and the transfer set prepared once (the real modules), one
    set of fold teachers (the first seed's), each on its fold's complement, teaching the
    out-of-fold students of every seed from their fold file; the remedies of one seed at the
    first only; a condition skipped (a budget's cut) is not run, and one a kept condition
    learns from cannot be skipped."""
    recipe = tmp_path / "Corpus" / "Blend"
    prepared = recipe / "results" / "prepared"
    prepared.mkdir(parents=True)
    rows = "".join(f"u{i},1.0,u{i}.wav,s{i % 6},w,child,f\n" for i in range(12))
    (prepared / "train.csv").write_text("ID,duration,wav,spk_id,words,age_group,gender\n" + rows)
    (prepared / "unlabelled.csv").write_text(
        "ID,duration,wav,spk_id,words,age_group,gender\nx0,1.0,x0.wav,s0,,,\n"
    )
    (prepared / "test.csv").write_text("ID,duration,wav,spk_id\n")
    (tmp_path / "stand_in.py").write_text(STAND_IN)
    command = [sys.executable, "-m", "blend_modules.study.runner", str(recipe), "honest_labels"]
    command += ["--jobs=2", "--poll_s=0.05", "--seeds", "1986", "1"]
    command += [f"--python={sys.executable} {tmp_path / 'stand_in.py'}", f"--docs={tmp_path / 'd'}"]
    env = dict(os.environ, RUN_RECORD=str(tmp_path / "runs.jsonl"))
    refused = subprocess.run(command + ["--skip", "teacher_large"], capture_output=True, text=True)
    assert refused.returncode == 2 and "needs teacher_large: skip it too" in refused.stderr
    command += ["--skip", "large_teacher_blend"]  # a budget's cut
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    runs = {
        (run["condition"], run["seed"]): run
        for run in map(json.loads, (tmp_path / "runs.jsonl").read_text().splitlines())
    }
    study = "results/study_honest_labels"
    for number in range(3):
        teacher = runs.pop((f"oof_teacher_fold{number}", "1986"))
        assert teacher["options"]["train_csv"] == f"{study}/folds/train_without_fold_{number}.csv"
        assert (recipe / teacher["options"]["train_csv"]).is_file()
    assert not any(name.startswith("oof_teacher") for name, _ in runs)  # the first seed only
    for seed in ("1986", "1"):
        options = runs[("oof_blend", seed)]["options"]
        assert options["teacher_folds"] == f"{study}/folds/folds.json"
        assert (
            options["teacher_folder"]
            == "[" + ", ".join(f"{study}/oof_teacher_fold{n}/1986" for n in range(3)) + "]"
        )
    transfer = runs[("oof_unlabelled_blend", "1986")]["options"]
    assert transfer["train_csv"] == f"{study}/transfer.csv"
    assert len((recipe / study / "transfer.csv").read_text().splitlines()) == 1 + 12 + 1
    consistent = runs[("consistent_blend", "1986")]["options"]
    assert consistent["teacher_mode"] == "online" and consistent["number_of_epochs"] == "16"
    assert ("consistent_blend", "1") not in runs and ("blend_l0.25_k6_T1.0", "1") in runs
    assert ("oof_unlabelled_blend", "1") not in runs and ("teacher_large", "1986") in runs
    assert not any(name == "large_teacher_blend" for name, _ in runs)
    plan = json.loads((recipe / study / "plan.json").read_text())
    assert ["oof_unlabelled_blend", "oof_blend"] in plan["comparisons"]
    assert ["consistent_blend", "clean_labels_blend"] in plan["comparisons"]

"""recipes/run_study.sh's order, with a stand-in for Python that records each run instead of
training: every run of the study happens once; with JOBS=2 two run at once (the remedies'
runs that wait for no chosen setting in the slots the stages leave), a student never
starts before its teacher (or an ensemble before its members) has finished, and the first run
that writes a teacher store finishes before another run of that store starts; a failed run
stops the study."""

import json
import os
import subprocess
import sys
from collections import defaultdict

import pytest
from conftest import REPO

# Stands in for "python": a training script writes its run's summary.json after a short sleep
# (start and end recorded); `-m ... study best` names the headline setting as the best.
STAND_IN = r"""
import json, os, sys, time
from pathlib import Path
args = sys.argv[1:]
if args[0] == "-m":
    if args[1:3] == ["blend_modules.analysis.study", "best"]:
        print("0.5 10 1.0")
    elif args[1] == "blend_modules.data.hparams":
        print("{model: {}}")
    sys.exit(0)
if args[0] == "perturb.py":
    sys.exit(0)
options = dict(arg[2:].split("=", 1) for arg in args[2:] if arg.startswith("--"))
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
(run / "summary.json").write_text("{}")
"""


def study(tmp_path, jobs: int, **environment):
    recipe = tmp_path / "Corpus" / "Blend"
    recipe.mkdir(parents=True)
    stand_in = tmp_path / "stand_in.py"
    stand_in.write_text(STAND_IN)
    record = tmp_path / "runs.jsonl"
    env = dict(
        os.environ,
        PYTHON=f"{sys.executable} {stand_in}",
        RUN_RECORD=str(record),
        JOBS=str(jobs),
        DOCS=str(tmp_path / "docs"),
        TOP_KS="1 7 620",
        TEMPERATURES="2.0",
        REMEDIES="ensemble perturbed small_ensemble larger",
    )
    env.update(environment)
    result = subprocess.run(
        ["bash", str(REPO / "recipes" / "run_study.sh"), str(recipe), "frame", "620"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
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
    # at most JOBS at once, and JOBS reached
    events = sorted([(run["start"], 1) for run in runs] + [(run["end"], -1) for run in runs])
    running = [sum(change for _, change in events[: i + 1]) for i in range(len(events))]
    assert max(running) == jobs
    # with two slots the remedies' runs that need no chosen setting fill the slots the stages
    # leave free (a sweep's odd run) before the remedies begin; with one they wait their turn
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
        for folder in options.get("teacher_folder", "").strip("[]").split(", "):
            if folder:
                assert by_folder[folder] <= run["start"], (run["condition"], folder)
        for member in options.get("ensemble_members", "").strip("[]").split(", "):
            if member:
                assert by_folder[member] <= run["start"], (run["condition"], member)
    first_of_store = defaultdict(list)
    for run in runs:
        if run["script"] == "train_blend.py" and "teacher_folder" in run["options"]:
            first_of_store[store_of(run)].append(run)
    for store, readers in first_of_store.items():
        writer, *others = sorted(readers, key=lambda run: run["start"])
        assert all(writer["end"] <= other["start"] for other in others), store


def test_no_temperature_sweep(tmp_path):
    """TEMPERATURES="" (CPU-hours short) skips the T sweep; the chosen setting still runs."""
    result, runs = study(tmp_path, 2, TEMPERATURES="")
    assert result.returncode == 0, result.stderr
    assert not [run for run in runs if run["options"].get("temperature") == "2.0"]
    assert len(runs) == 3 * 4 + 3 + 3 + 3 + 3 * 2 * 2 + 2


def test_a_failed_run_stops_the_study(tmp_path):
    result, runs = study(tmp_path, 2, FAIL_CONDITION="cnn")
    assert result.returncode == 1
    assert "a run failed: its log is in results/study/logs/" in result.stderr
    # nothing that comes after the CNNs; a filler that took a free slot beside them ends
    assert {run["condition"] for run in runs} - {"remedy_cnn_perturbed"} == {"blstm"}

"""Reliability: resuming after kill -9 (teacher training, store dump, student training), the
same metrics from the same seed, non-finite losses, and bad inputs refused before training."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import speechbrain as sb
import torch
from conftest import RECIPE, run_recipe, teacher_overrides, tiny_overrides, write_rows
from speechbrain.dataio.batch import PaddedBatch

from blend_modules.data.datasets import dataio_prepare
from blend_modules.data.hparams import load_hparams_file
from blend_modules.data.manifests import check_manifest
from blend_modules.training.brains import TeacherBrain
from blend_modules.training.checkpoints import COMPLETE_MARKER

KILL_SPLITS = {"train": 40, "valid": 4, "test": 4}
COMPARED = ("best_epoch", "valid_loss", "valid_frame_acc", "test_loss", "test_frame_acc")


def summary(folder: Path) -> dict:
    return json.loads((folder / "summary.json").read_text())


def without_times(history):
    return [{key: value for key, value in epoch.items() if key != "time_s"} for epoch in history]


def test_same_seed_same_metrics(trained_teacher, tmp_path):
    """Determinism: the tiny teacher run again from scratch gives the same numbers."""
    root = trained_teacher.parent
    overrides = {**teacher_overrides(root), "output_folder": tmp_path / "again"}
    result = run_recipe("train_teacher.py", "blstm.yaml", overrides)
    assert result.returncode == 0, result.stderr[-3000:]
    first, second = summary(trained_teacher), summary(tmp_path / "again")
    assert {k: first[k] for k in COMPARED} == {k: second[k] for k in COMPARED}
    assert without_times(first["history"]) == without_times(second["history"])


@pytest.fixture(scope="module")
def kill_corpus(tmp_path_factory):
    """A 40-utterance training set: long enough to be killed in the middle of things."""
    root = tmp_path_factory.mktemp("kill")
    hparams = load_hparams_file(RECIPE / "hparams" / "cnn.yaml", kill_overrides(root, "unused"))
    hparams["prepare"]()
    return root


def kill_overrides(root: Path, output: str, **extra) -> dict:
    return {
        **tiny_overrides(root / "prepared", root / output, KILL_SPLITS),
        "number_of_epochs": 3,
        **extra,
    }


def args_of(script: str, hparams_file: str, overrides: dict) -> list:
    return [sys.executable, script, f"hparams/{hparams_file}"] + [
        f"--{key}={value}" for key, value in overrides.items()
    ]


def kill_when(args: list, condition, log: Path) -> None:
    """Start a recipe script and SIGKILL it as soon as ``condition()`` holds."""
    with open(log, "w") as log_file:
        process = subprocess.Popen(args, cwd=RECIPE, stdout=log_file, stderr=subprocess.STDOUT)
        deadline = time.time() + 600
        while process.poll() is None and time.time() < deadline:
            if condition():
                os.kill(process.pid, signal.SIGKILL)
                process.wait()
                return
            time.sleep(0.002)
    process.kill()
    pytest.fail(f"{args[1]} ended before it could be killed (see {log}).")


def completed_checkpoints(save_folder: Path, intra_epoch: bool = False) -> list:
    """The complete checkpoints in ``save_folder`` now. The training process removes folders
    while this looks (old checkpoints; SpeechBrain's own ``save`` folder is recreated at start):
    one that vanishes midway is not counted, never an error."""
    found = []
    try:
        for ckpt in save_folder.glob("CKPT+*"):
            if (ckpt / COMPLETE_MARKER).exists():
                if ("intra_epoch" in (ckpt / "CKPT.yaml").read_text()) == intra_epoch:
                    found.append(ckpt)
    except FileNotFoundError:
        pass
    return found


@pytest.fixture(scope="module")
def reference_runs(kill_corpus):
    """Uninterrupted teacher and blended student runs to compare resumed runs against."""
    teacher = kill_overrides(kill_corpus, "teacher")
    assert run_recipe("train_teacher.py", "blstm.yaml", teacher).returncode == 0
    student = kill_overrides(
        kill_corpus,
        "student",
        teacher_folder=kill_corpus / "teacher",
        teacher_store=kill_corpus / "store",
        teacher_store_shard_size=1,
    )
    result = run_recipe("train_blend.py", "cnn_blend.yaml", student)
    assert result.returncode == 0, result.stderr[-3000:]
    return teacher, student


def test_teacher_training_resumes_after_kill(kill_corpus, reference_runs, tmp_path):
    overrides = kill_overrides(kill_corpus, "teacher_killed")
    save = kill_corpus / "teacher_killed" / "save"
    kill_when(
        args_of("train_teacher.py", "blstm.yaml", overrides),
        lambda: bool(completed_checkpoints(save)),  # killed during epoch 2
        tmp_path / "killed.log",
    )
    assert not (kill_corpus / "teacher_killed" / "summary.json").exists()
    assert run_recipe("train_teacher.py", "blstm.yaml", overrides).returncode == 0
    resumed, reference = summary(kill_corpus / "teacher_killed"), summary(kill_corpus / "teacher")
    assert {k: resumed[k] for k in COMPARED} == {k: reference[k] for k in COMPARED}
    assert without_times(resumed["history"]) == without_times(reference["history"])


def test_store_dump_resumes_after_kill(kill_corpus, reference_runs, tmp_path):
    _, student = reference_runs
    store = kill_corpus / "store_killed"
    overrides = {**student, "output_folder": kill_corpus / "student_dump_killed"}
    overrides["teacher_store"] = store
    kill_when(
        args_of("train_blend.py", "cnn_blend.yaml", overrides),
        lambda: (store / "shard_00005.json").exists(),
        tmp_path / "killed.log",
    )
    assert not (store / "metadata.json").exists(), "the kill came after the dump ended"
    written_before = {path.name for path in store.glob("shard_*.json")}
    result = run_recipe("train_blend.py", "cnn_blend.yaml", overrides)
    assert result.returncode == 0, result.stderr[-3000:]
    log = result.stdout + result.stderr
    assert all(f"Kept {store}/{name[:-5]} from an earlier dump" in log for name in written_before)
    reference_store = json.loads((kill_corpus / "store" / "metadata.json").read_text())
    assert json.loads((store / "metadata.json").read_text()) == reference_store
    resumed, reference = summary(overrides["output_folder"]), summary(kill_corpus / "student")
    assert {k: resumed[k] for k in COMPARED} == {k: reference[k] for k in COMPARED}


def test_student_training_resumes_mid_epoch_after_kill(kill_corpus, reference_runs, tmp_path):
    """Killed after an intra-epoch checkpoint (every 3 steps): the rerun continues within the
    epoch, and ends with the uninterrupted run's valid and test metrics. Only the training
    statistics of the interrupted epoch differ: they cover the batches after the resume."""
    _, student = reference_runs
    overrides = {**student, "output_folder": kill_corpus / "student_killed"}
    save = kill_corpus / "student_killed" / "save"
    kill_when(
        args_of("train_blend.py", "cnn_blend.yaml", {**overrides, "ckpt_interval_steps": 3}),
        lambda: bool(completed_checkpoints(save, intra_epoch=True)),
        tmp_path / "killed.log",
    )
    result = run_recipe("train_blend.py", "cnn_blend.yaml", overrides)
    assert result.returncode == 0, result.stderr[-3000:]
    resumed, reference = summary(kill_corpus / "student_killed"), summary(kill_corpus / "student")
    assert {k: resumed[k] for k in COMPARED} == {k: reference[k] for k in COMPARED}
    assert [e["valid"] for e in resumed["history"]] == [e["valid"] for e in reference["history"]]


def test_interrupted_checkpoint_is_ignored(kill_corpus, reference_runs, tmp_path):
    """A checkpoint whose saving was cut (no COMPLETE marker) is not resumed from."""
    teacher, _ = reference_runs
    folder = tmp_path / "teacher"
    overrides = {**teacher, "output_folder": folder, "number_of_epochs": 1}
    assert run_recipe("train_teacher.py", "blstm.yaml", overrides).returncode == 0
    (checkpoint,) = completed_checkpoints(folder / "save")
    (checkpoint / COMPLETE_MARKER).unlink()
    (checkpoint / "model.ckpt").write_bytes(b"cut short")
    result = run_recipe("train_teacher.py", "blstm.yaml", overrides)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "its saving was interrupted" in result.stdout + result.stderr


class PoisonedBrain(TeacherBrain):
    """Makes the logits NaN on training batches holding a poisoned utterance."""

    poisoned = set()

    def compute_forward(self, batch, stage):
        logits = super().compute_forward(batch, stage)
        if stage == sb.Stage.TRAIN and self.poisoned & set(batch.id):
            return logits * float("nan")
        return logits


def poisoned_brain(tiny_hparams, tmp_path, poisoned, **run_opts):
    root = Path(tiny_hparams["prepared_folder"]).parent
    hparams = load_hparams_file(
        RECIPE / "hparams" / "cnn.yaml", tiny_overrides(root / "prepared", tmp_path)
    )
    brain = PoisonedBrain(
        modules=hparams["modules"],
        opt_class=hparams["opt_class"],
        hparams=hparams,
        run_opts=run_opts,
        checkpointer=hparams["checkpointer"],
    )
    brain.poisoned = set(poisoned)
    hparams["epoch_counter"].limit = 1
    return brain, dataio_prepare(hparams), hparams


def fit_one_epoch(brain, datasets, hparams):
    brain.fit(
        brain.hparams.epoch_counter,
        datasets["train"],
        datasets["valid"],
        train_loader_kwargs=hparams["train_dataloader_opts"],
        valid_loader_kwargs=hparams["eval_dataloader_opts"],
    )


def test_nonfinite_batches_are_skipped_and_counted(tiny_hparams, tmp_path):
    first_id = dataio_prepare(tiny_hparams)["train"][0]["id"]
    brain, datasets, hparams = poisoned_brain(tiny_hparams, tmp_path, [first_id])
    fit_one_epoch(brain, datasets, hparams)
    train = brain.history.epochs[0]["train"]
    assert train["skipped_nonfinite"] == 1
    assert np.isfinite(train["loss"]) and np.isfinite(train["frame_acc"])
    assert all(torch.isfinite(p).all() for p in brain.modules.parameters())


def test_persistent_nonfinite_loss_stops_training(tiny_hparams, tmp_path):
    train_ids = [item["id"] for item in dataio_prepare(tiny_hparams)["train"]]
    brain, datasets, hparams = poisoned_brain(
        tiny_hparams, tmp_path, train_ids, nonfinite_patience=1
    )
    with pytest.raises(RuntimeError, match=r"2 training batches in a row had a non-finite loss"):
        fit_one_epoch(brain, datasets, hparams)


def test_nonfinite_features_name_the_utterance(tiny_hparams, tmp_path):
    brain, datasets, _ = poisoned_brain(tiny_hparams, tmp_path, [])
    items = [datasets["valid"][0], datasets["valid"][1]]
    items[1]["sig"] = items[1]["sig"].clone()
    items[1]["sig"][100] = float("inf")
    with pytest.raises(ValueError, match=rf"NaN or inf values for utterance\(s\) {items[1]['id']}"):
        brain.compute_features(PaddedBatch(items))


def test_nan_samples_in_float_audio(tmp_path):
    audio = np.zeros(8000, dtype=np.float32)
    audio[4000] = np.nan
    sf.write(tmp_path / "a.wav", audio, 8000, subtype="FLOAT")
    rows = [{"ID": "u1", "duration": 1.0, "wav": "$data_root/a.wav"}]
    manifest = write_rows(tmp_path / "m.csv", rows)
    with pytest.raises(
        ValueError,
        match=r"m.csv:2 \(utterance 'u1'\).*1 NaN or infinite samples, the first at 0.500 s",
    ):
        check_manifest(manifest, 8000)


@pytest.mark.parametrize(
    "row, message",
    [
        ({"start": 0.5, "stop": 3.0, "channel": 1}, r"segment \[0.500, 3.000\] s is not inside"),
        ({"start": 0.5, "stop": 1.0, "channel": 2}, r"has no channel 2 \(2 channels\)"),
        ({"start": 0.8, "stop": 0.5, "channel": 0}, r"segment \[0.800, 0.500\] s is not inside"),
        ({"start": "x", "stop": 1.0, "channel": 0}, r"start must be a finite number of seconds"),
    ],
)
def test_bad_segments(tmp_path, row, message):
    sf.write(tmp_path / "conv.wav", np.zeros((16000, 2), dtype=np.int16), 8000)
    rows = [{"ID": "u1", "duration": 1.0, "wav": str(tmp_path / "conv.wav"), **row}]
    manifest = write_rows(tmp_path / "m.csv", rows)
    with pytest.raises(ValueError, match=rf"m.csv:2 \(utterance 'u1'\): .*{message}"):
        check_manifest(manifest, 8000)


def test_unknown_override_key_is_refused(tmp_path):
    result = run_recipe(
        "train_teacher.py", "blstm.yaml", {"output_folder": tmp_path, "hard_wieght": 0.3}
    )
    assert result.returncode != 0
    assert "Override 'hard_wieght' not found" in result.stdout + result.stderr
    assert not (tmp_path / "save").exists()  # refused before anything ran

"""Faults a user meets: runs started at once on one store, a full disk, torn option files, a
student whose corpus preparation would rewrite its teacher's, stale downsampled copies, and
lexicon lines that cannot be read as written."""

import errno
import hashlib
import json
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import RECIPE, REPO, tiny_overrides
from speechbrain.utils.checkpoints import mark_as_loader, mark_as_saver, register_checkpoint_hooks

from blend_modules.alignment.lexicon import read_lexicon
from blend_modules.data.atomic_files import write_atomically
from blend_modules.data.prepare_once import finish_preparation, is_prepared
from blend_modules.training.checkpoints import CompleteCheckpointer
from blend_modules.training.teacher import load_blending_teacher


def test_concurrent_writers_of_one_file_never_collide(tmp_path):
    """Each call writes under a temporary name of its own: with one fixed ``.partial`` name,
    one writer renamed the other's half-written file or found it gone."""
    path, errors = tmp_path / "metadata.json", []
    contents = [json.dumps({"writer": n, "pad": "x" * 100_000}).encode() for n in range(4)]

    def writer(content):
        try:
            for _ in range(25):
                write_atomically(path, lambda stream: stream.write(content))
        except Exception as error:  # noqa: BLE001 - the test reports any
            errors.append(error)

    threads = [threading.Thread(target=writer, args=(content,)) for content in contents]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert path.read_bytes() in contents  # one writer's whole file
    assert [p.name for p in tmp_path.iterdir()] == ["metadata.json"]  # no temporary left


def test_a_full_disk_names_the_file_and_leaves_no_temporary(tmp_path):
    def disk_full(stream):
        stream.write(b"half")
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(OSError, match=f"No space left on the device to write {tmp_path}/a.npy"):
        write_atomically(tmp_path / "a.npy", disk_full)
    assert list(tmp_path.iterdir()) == []


def test_a_torn_options_file_means_unprepared(tmp_path, caplog):
    finish_preparation(tmp_path, {"a": 1})
    assert is_prepared(tmp_path, {"a": 1})
    (tmp_path / "prepare_options.json").write_text('{"a": ')  # as a crash mid-write left it
    assert not is_prepared(tmp_path, {"a": 1})
    assert f"{tmp_path / 'prepare_options.json'} cannot be read" in caplog.text


@register_checkpoint_hooks
class Weights:
    """A recoverable whose saving can be made to fail as torch.save fails on a full disk."""

    disk_full = False

    @mark_as_saver
    def _save(self, path):
        torch.save({"w": torch.ones(3)}, path)
        if self.disk_full:
            raise RuntimeError("PytorchStreamWriter failed writing file data/0: file write failed")

    @mark_as_loader
    def _load(self, path, end_of_epoch):
        torch.load(path)


def test_a_checkpoint_save_on_a_full_disk_is_removed_and_named(tmp_path, monkeypatch):
    weights = Weights()
    checkpointer = CompleteCheckpointer(tmp_path / "save", recoverables={"weights": weights})
    first = checkpointer.save_checkpoint(meta={"epoch": 1})
    weights.disk_full = True
    free = shutil.disk_usage(tmp_path)._replace(free=4096)  # torch.save gives no errno
    monkeypatch.setattr(shutil, "disk_usage", lambda path: free)
    with pytest.raises(OSError, match=f"No space left on the device: saving a checkpoint in {tmp_path}"):
        checkpointer.save_checkpoint(meta={"epoch": 2})
    assert [path.name for path in (tmp_path / "save").iterdir()] == [first.path.name]
    assert [c.meta["epoch"] for c in checkpointer.list_checkpoints()] == [1]  # intact


@pytest.mark.parametrize(
    "line, message",
    [
        ("HELLO", "lexicon.txt:2: word 'HELLO' has no phones"),
        ("HELLO HH AH00 L OW1", r"lexicon.txt:2: phones \['AH00'\] are not CMU phones"),
        ("HELLO HH AX L OW", r"lexicon.txt:2: phones \['AX'\] are not CMU phones"),
    ],
)
def test_lexicon_lines_that_cannot_be_read_as_written_are_refused(tmp_path, line, message):
    (tmp_path / "lexicon.txt").write_text(f"WORLD W ER1 L D\n{line}\n\nA AH0\n")
    with pytest.raises(ValueError, match=message):
        read_lexicon(tmp_path / "lexicon.txt")


def test_lexicon_with_stress_digits_and_variants(tmp_path):
    (tmp_path / "lexicon.txt").write_text("WORLD W ER1 L D\n\nREAD R IY1 D\nREAD(2) R EH1 D\n")
    assert read_lexicon(tmp_path / "lexicon.txt") == {
        "world": ["W ER L D"],
        "read": ["R IY D", "R EH D"],
    }


def tone(path: Path, frequency: float, seconds: float = 0.5) -> None:
    time = np.arange(int(16000 * seconds)) / 16000
    sf.write(path, 0.3 * np.sin(2 * np.pi * frequency * time), 16000, subtype="PCM_16")


def test_downsampled_copy_follows_its_original(tmp_path):
    """A copy was reused whenever one existed: audio changed in place trained stale."""
    sys.path.insert(0, str(REPO / "recipes" / "SpeechOcean762" / "Blend"))
    from speechocean_prepare import downsampled

    original = tmp_path / "utt.wav"
    tone(original, 440)
    rows = [{"ID": "utt", "wav": str(original)}]
    (copy,) = downsampled(rows, tmp_path, 8000)
    copied = tmp_path / copy["wav"].replace("$data_root/", "")
    first = sf.read(copied)[0]
    downsampled(rows, tmp_path, 8000)
    assert np.array_equal(sf.read(copied)[0], first)  # unchanged original: the copy is kept
    tone(original, 1000, seconds=0.6)
    downsampled(rows, tmp_path, 8000)
    assert len(sf.read(copied)[0]) == 4800  # the new audio, 0.6 s at 8 kHz


def test_an_ensemble_store_path_made_from_its_member_list_is_refused():
    hparams = {
        "hard_weight": 0.5,
        "top_k": 3,
        "temperature": 1.0,
        "teacher_mode": "offline",
        "teacher_store_top_k": 8,
        "targets": type("Targets", (), {"num_labels": 31})(),
        "teacher_folder": ["results/blstm/1", "results/cnn/1"],
        "teacher_store": "['results/blstm/1', 'results/cnn/1']/store_top8",  # the YAML's !ref
    }
    with pytest.raises(ValueError, match="made from the list of teacher folders.*--teacher_store"):
        load_blending_teacher(hparams)


def folder_digest(folder: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(path.relative_to(folder).as_posix().encode() + path.read_bytes())
    return digest.hexdigest()


def blend_command(overrides: dict) -> list:
    return [sys.executable, "train_blend.py", "hparams/cnn_blend.yaml"] + [
        f"--{key}={value}" for key, value in overrides.items()
    ]


def test_a_student_preparing_other_splits_is_refused_before_it_rewrites_the_teachers(
    trained_teacher, tmp_path
):
    """Other corpus options on the teacher's prepared folder (here other split sizes; at 2.9 h
    other valid speakers: 590 of 620 labels differ) re-prepared the folder under the trained
    teacher before the teacher was checked."""
    prepared = trained_teacher.parent / "prepared"
    before = folder_digest(prepared)
    overrides = tiny_overrides(prepared, tmp_path / "student", {"train": 10, "valid": 4, "test": 4})
    overrides["teacher_folder"] = trained_teacher
    result = subprocess.run(
        blend_command(overrides), cwd=RECIPE, capture_output=True, text=True, timeout=600
    )
    assert result.returncode != 0
    assert f"Teacher {trained_teacher} was prepared in {prepared} with other options" in result.stderr
    assert "'utterances': ({'train': 12" in result.stderr
    assert folder_digest(prepared) == before and not (tmp_path / "student").exists()


def test_a_run_refused_at_the_store_check_leaves_no_output_folder(trained_teacher, tmp_path):
    store = tmp_path / "store"
    store.mkdir()
    (store / "metadata.json").write_text(json.dumps({"format": 0, "top_k": 31}))
    overrides = tiny_overrides(trained_teacher.parent / "prepared", tmp_path / "student")
    overrides.update(teacher_folder=trained_teacher, teacher_store=store)
    result = subprocess.run(
        blend_command(overrides), cwd=RECIPE, capture_output=True, text=True, timeout=600
    )
    assert result.returncode != 0
    assert f"Teacher store {store} was written with other settings" in result.stderr
    assert not (tmp_path / "student").exists()


def test_two_blend_runs_started_at_once_on_one_store_take_turns(trained_teacher, tmp_path):
    """Both dump-or-read the same store at the same moment: one dumps, the other waits for its
    lock, then reads the finished store."""
    store = tmp_path / "store"
    runs = []
    for name in ("first", "second"):
        overrides = tiny_overrides(trained_teacher.parent / "prepared", tmp_path / name)
        overrides.update(teacher_folder=trained_teacher, teacher_store=store, number_of_epochs=1)
        overrides["teacher_store_shard_size"] = 1  # 12 shards: a long window for collisions
        runs.append(
            subprocess.Popen(
                blend_command(overrides),
                cwd=RECIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                env={**os.environ, "OMP_NUM_THREADS": "1"},
            )
        )
    logs = [run.communicate(timeout=600)[0] for run in runs]
    assert [run.returncode for run in runs] == [0, 0], "\n".join(log[-2000:] for log in logs)
    dumped = [f"Dumping the teacher's top-31 store {store}" in log for log in logs]
    assert sorted(dumped) == [False, True]  # dumped once, by one of them
    metadata = json.loads((store / "metadata.json").read_text())
    assert len(metadata["utterances"]) == 12 and len(metadata["shards"]) == 12
    assert json.loads((tmp_path / "first" / "summary.json").read_text())["bytes_per_frame"] == 124

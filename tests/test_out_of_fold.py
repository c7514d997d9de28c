"""Out-of-fold teachers (issue 38): speaker folds, the check that no teacher labels speech it
trained on, a store whose every utterance holds the labels of its own fold's teacher, and a
transfer set that adds unlabelled audio."""

import csv
import json
import re
import shutil
from pathlib import Path

import pytest
import torch
from conftest import run_recipe, tiny_overrides, write_rows
from speechbrain.dataio.batch import PaddedBatch

from blend_modules.data.datasets import dataio_prepare
from blend_modules.data.folds import read_folds, speaker_folds, write_folds
from blend_modules.data.frames import frame_counts
from blend_modules.data.manifests import audio_path, join_manifests
from blend_modules.targets.frame import UNALIGNED
from blend_modules.training.losses import teacher_topk
from blend_modules.training.teacher import (
    OutOfFoldTeacher,
    load_blending_teacher,
    load_teacher,
)
from blend_modules.training.teacher_store import attach_teacher_store

STORE_K = 4


def read_rows(path):
    with open(path, newline="") as csv_file:
        return list(csv.DictReader(csv_file))


def test_speaker_folds_are_stratified_deterministic_and_complete(tmp_path):
    """12 speakers (4 children), 3 folds: 4 speakers each, the children spread 2 / 1 / 1;
    teacher i's manifest is every row but fold i's speakers'."""
    rows = [
        {
            "ID": f"u{i:02d}",
            "wav": f"$data_root/u{i:02d}.wav",
            "spk_id": f"s{i // 2:02d}",
            "age_group": "child" if i < 8 else "adult",
        }
        for i in range(24)
    ]
    manifest = write_rows(tmp_path / "train.csv", rows)
    folds = json.loads(write_folds(manifest, tmp_path / "folds", 3, seed=7).read_text())["folds"]
    assert sorted(sum(folds, [])) == sorted({row["spk_id"] for row in rows})
    assert [len(fold) for fold in folds] == [4, 4, 4]
    children = {f"s{i:02d}" for i in range(4)}
    assert sorted(len(children & set(fold)) for fold in folds) == [1, 1, 2]
    for number, fold in enumerate(folds):
        kept = read_rows(tmp_path / "folds" / f"train_without_fold_{number}.csv")
        assert [row["ID"] for row in rows if row["spk_id"] not in fold] == [r["ID"] for r in kept]
        assert kept[0]["wav"] == str(tmp_path / f"{kept[0]['ID']}.wav")  # resolved
    assert speaker_folds(rows, 3, seed=7) == folds  # the seed decides
    assert read_folds(tmp_path / "folds" / "folds.json")[folds[2][0]] == 2
    with pytest.raises(ValueError, match="3 speakers cannot fill 4 folds"):
        speaker_folds(rows[:6], 4, seed=7)


@pytest.fixture(scope="module")
def two_speakers(tiny_hparams, tmp_path_factory):
    """The tiny training set with its utterances given to speakers a and b in turn, the fold
    file {a: 0, b: 1} and each fold's complement manifest."""
    root = tmp_path_factory.mktemp("folds")
    rows = read_rows(tiny_hparams["train_csv"])
    for i, row in enumerate(rows):
        row["spk_id"] = "ab"[i % 2]
        row["wav"] = str(audio_path(row["wav"], Path(tiny_hparams["train_csv"])))
    manifest = write_rows(root / "train.csv", rows)
    (root / "folds.json").write_text(json.dumps({"folds": [["a"], ["b"]]}))
    for number, speaker in enumerate("ab"):
        kept = [row for row in rows if row["spk_id"] != speaker]
        write_rows(root / f"train_without_fold_{number}.csv", kept)
    return root, manifest


def blend_hparams(tiny_hparams, teacher_folder, root, **changes):
    hparams = dict(tiny_hparams)
    hparams.update(
        hard_weight=0.5,
        top_k=2,
        temperature=1.0,
        teacher_mode="offline",
        teacher_store_top_k=STORE_K,
        teacher_store=str(root / "store"),
        teacher_store_shard_size=5,
        teacher_folder=teacher_folder,
        teacher_folds=str(root / "folds.json"),
    )
    hparams.update(changes)
    return hparams


def fold_teacher(trained_teacher, folder, train_csv):
    """A copy of the trained teacher whose hyperparams.yaml says it trained on ``train_csv``."""
    shutil.copytree(trained_teacher, folder, dirs_exist_ok=True)
    hparams_file = folder / "hyperparams.yaml"
    text = re.sub(r"(?m)^train_csv: .*$", f"train_csv: {train_csv}", hparams_file.read_text())
    hparams_file.write_text(text)
    return str(folder)


def test_a_teacher_that_heard_its_fold_is_refused(tiny_hparams, trained_teacher, two_speakers):
    root, _ = two_speakers
    honest = [
        fold_teacher(trained_teacher, root / f"teacher_{n}", root / f"train_without_fold_{n}.csv")
        for n in (0, 1)
    ]
    teacher, summary = load_blending_teacher(blend_hparams(tiny_hparams, honest, root))
    assert isinstance(teacher, OutOfFoldTeacher) and " | " in summary["teacher"]
    swapped = list(reversed(honest))  # teacher 0 trained on fold 0's speaker a
    with pytest.raises(ValueError, match=r"holds 1 speaker\(s\) of fold 0 .* \(e.g. a\)"):
        load_blending_teacher(blend_hparams(tiny_hparams, swapped, root))
    with pytest.raises(ValueError, match="has 2 folds but teacher_folder lists 1 teachers"):
        load_blending_teacher(blend_hparams(tiny_hparams, honest[:1], root))
    with pytest.raises(ValueError, match="needs teacher_folder to list one teacher per fold"):
        load_blending_teacher(blend_hparams(tiny_hparams, honest[0], root))
    with pytest.raises(ValueError, match="teacher_mode: offline only"):
        load_blending_teacher(blend_hparams(tiny_hparams, honest, root, teacher_mode="online"))


def test_each_utterance_holds_its_folds_teacher_labels(
    tiny_hparams, trained_teacher, two_speakers, tmp_path
):
    """Two different teachers (the second's weights perturbed): an utterance of speaker a
    holds the top-k of the teacher of fold 0, one of b that of fold 1."""
    root, manifest = two_speakers
    hparams = blend_hparams(tiny_hparams, [], root, train_csv=str(manifest))
    hparams["teacher_store"] = str(tmp_path / "store")
    members = [load_teacher(trained_teacher, hparams["features"], hparams["targets"]) for _ in "ab"]
    with torch.no_grad():
        for parameter in members[1].parameters():
            parameter.add_(0.5 * torch.randn_like(parameter))
    teacher = OutOfFoldTeacher(members, {"a": 0, "b": 1}, "folds.json")
    dataset = dataio_prepare(hparams)["train"]
    summary = attach_teacher_store(dataset, teacher, hparams, "cpu")
    assert (tmp_path / "store" / "fold_0" / "metadata.json").is_file()
    assert (tmp_path / "store" / "fold_1" / "metadata.json").is_file()
    frames, differs = 0, False
    for index in range(len(dataset)):
        item = dataset[index]
        batch = PaddedBatch([item])
        wavs, wav_lens = batch.sig
        lengths = frame_counts(wav_lens, wavs.shape[1], hparams["features"])
        features = hparams["features"]["compute_features"](wavs)
        with torch.no_grad():
            ids = [teacher_topk(member(features, lengths), 2)[0][0] for member in members]
        own = 0 if dataset.data[item["id"]]["spk_id"] == "a" else 1
        assert torch.equal(item["teacher_topk_ids"], ids[own])
        differs |= not torch.equal(ids[0], ids[1])
        frames += int(lengths[0])
    assert differs and summary["frames"] == frames
    stranger = dict(hparams, teacher_store=str(tmp_path / "other"))
    rows = read_rows(manifest)
    rows[3]["spk_id"] = "c"
    stranger["train_csv"] = str(write_rows(tmp_path / "stranger.csv", rows))
    with pytest.raises(
        ValueError, match=rf"Utterance {rows[3]['ID']}: its speaker c is in no fold"
    ):
        attach_teacher_store(dataio_prepare(stranger)["train"], teacher, stranger, "cpu")


def test_a_transfer_set_of_labelled_and_unlabelled_audio(tiny_hparams, tmp_path):
    """join_manifests: the training set and recordings without alignment in one manifest
    (wav paths resolved, so it may live anywhere); with soft_only_unaligned the unaligned ones
    train with no hard target. Other columns or a repeated ID are named."""
    train = Path(tiny_hparams["train_csv"])
    rows = read_rows(train)
    extra = [dict(row, ID=f"unlabelled_{row['ID']}") for row in rows[:3]]
    for row in extra:
        row["wav"] = str(audio_path(row["wav"], train))
    unlabelled = write_rows(tmp_path / "unlabelled.csv", extra)
    joined = join_manifests([train, unlabelled], tmp_path / "elsewhere" / "transfer.csv")
    assert [row["ID"] for row in read_rows(joined)] == [row["ID"] for row in rows + extra]
    targets = tiny_hparams["targets"]
    hparams = dict(tiny_hparams, train_csv=str(joined))
    targets.soft_only_unaligned = True
    try:
        dataset = dataio_prepare(hparams)["train"]
    finally:
        targets.soft_only_unaligned = False
    labels = {item["id"]: item["frame_labels"] for item in dataset}
    assert all((labels[row["ID"]] == UNALIGNED).all() for row in extra)
    assert not any((labels[row["ID"]] == UNALIGNED).all() for row in rows)
    with pytest.raises(ValueError, match=r"utterance '.*' is also in"):
        join_manifests([train, train], tmp_path / "twice.csv")
    write_rows(tmp_path / "other.csv", [{"ID": "x", "wav": "x.wav"}])
    with pytest.raises(ValueError, match=r"other.csv: columns \['ID', 'wav'\], not those of"):
        join_manifests([train, tmp_path / "other.csv"], tmp_path / "bad.csv")


def test_the_recipe_blends_from_out_of_fold_teachers(trained_teacher):
    """As a user runs it: folds of the tiny training set's 4 speakers, one 1-epoch teacher per
    fold on its complement, then train_blend.py with teacher_folds: its summary names both
    teachers and each fold's part of the store holds that fold's utterances."""
    root = trained_teacher.parent
    prepared = root / "prepared"
    folds = write_folds(prepared / "train.csv", root / "folds", num_folds=2, seed=3)
    teachers = []
    for number in range(2):
        teacher = root / f"oof_teacher_fold{number}"
        overrides = {**tiny_overrides(prepared, teacher), "number_of_epochs": 1}
        overrides["train_csv"] = root / "folds" / f"train_without_fold_{number}.csv"
        result = run_recipe("train_teacher.py", "blstm.yaml", overrides)
        assert result.returncode == 0, result.stderr[-3000:]
        teachers.append(str(teacher))
    overrides = tiny_overrides(prepared, root / "oof_blend")
    overrides.update(
        number_of_epochs=1,
        teacher_folds=folds,
        teacher_folder="[" + ", ".join(teachers) + "]",
        teacher_store=root / "oof_store",
    )
    result = run_recipe("train_blend.py", "cnn_blend.yaml", overrides)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((root / "oof_blend" / "summary.json").read_text())
    assert summary["teacher"].count(" | ") == 1
    fold_of = read_folds(folds)
    for number in range(2):
        metadata = json.loads((root / "oof_store" / f"fold_{number}" / "metadata.json").read_text())
        stored = set(metadata["utterances"])
        expected = {
            row["ID"]
            for row in read_rows(prepared / "train.csv")
            if fold_of[row["spk_id"]] == number
        }
        assert stored == expected

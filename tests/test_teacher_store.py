"""The teacher loader, the offline top-k store, and online = offline blending."""

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import frame_blend, mean_teacher_confidence, topk_targets
from speechbrain.dataio.batch import PaddedBatch

import blend_modules.training.teacher_store
from blend_modules.data.datasets import dataio_prepare
from blend_modules.data.frames import frame_counts
from blend_modules.targets.frame import FrameTargets
from blend_modules.training.losses import soft_targets
from blend_modules.training.teacher import Teacher, load_teacher
from blend_modules.training.teacher_store import (
    TeacherStore,
    attach_teacher_store,
    dump_teacher_store,
    store_metadata,
)

TOP_K, TEMPERATURE, STORE_K = 4, 2.0, 8


@pytest.fixture(scope="module")
def setup(tiny_hparams, trained_teacher, tmp_path_factory):
    hparams = dict(tiny_hparams)
    hparams.update(
        top_k=TOP_K,
        temperature=TEMPERATURE,
        teacher_store_top_k=STORE_K,
        teacher_store=tmp_path_factory.mktemp("store"),
        teacher_store_shard_size=5,
    )
    teacher = load_teacher(trained_teacher, hparams["features"], hparams["targets"])
    datasets = dataio_prepare(hparams)
    return hparams, teacher, datasets


def store_stamps(folder):
    return {path: path.stat().st_mtime_ns for path in folder.iterdir()}


def make_batch(dataset, indices):
    return PaddedBatch([dataset[i] for i in indices])


def online_topk(hparams, teacher, batch):
    wavs, wav_lens = batch.sig
    lengths = frame_counts(wav_lens, wavs.shape[1], hparams["features"])
    with torch.no_grad():
        logits = teacher(hparams["features"]["compute_features"](wavs), lengths)
    return topk_targets(logits, TOP_K, TEMPERATURE)


def test_store_round_trip_and_online_equals_offline(setup):
    hparams, teacher, datasets = setup
    summary = attach_teacher_store(datasets["train"], teacher, hparams, "cpu")
    assert summary["bytes_per_frame"] == STORE_K * (2 + 2)  # int16 ids + float16 log-probs
    top1, entropy = mean_teacher_confidence(teacher, datasets["train"], hparams["features"])
    assert summary["teacher_top1"] == pytest.approx(top1, rel=1e-4)
    assert summary["teacher_entropy"] == pytest.approx(entropy, rel=1e-4)

    batch = make_batch(datasets["train"], [9, 2, 5])  # not a batch the store was dumped in
    online_ids, online_probs = online_topk(hparams, teacher, batch)
    labels, label_lens = batch.frame_labels
    lengths = torch.round(label_lens * labels.shape[1]).long()
    stored_ids = batch.teacher_topk_ids.data
    stored_probs = soft_targets(batch.teacher_topk_log_probs.data, TEMPERATURE)
    for i, length in enumerate(lengths.tolist()):
        assert stored_ids.shape[1] == online_ids.shape[1]
        assert torch.equal(stored_ids[i, :length], online_ids[i, :length])
        assert torch.allclose(stored_probs[i, :length], online_probs[i, :length], atol=1e-3)

    student_logits = torch.randn(*labels.shape, hparams["num_labels"])
    online = frame_blend(
        student_logits, labels, lengths, online_ids, online_probs, 0.3, TEMPERATURE
    )
    offline = frame_blend(
        student_logits, labels, lengths, stored_ids, stored_probs, 0.3, TEMPERATURE
    )
    assert torch.allclose(online.total, offline.total, rtol=1e-3)
    assert online.soft > 0


def test_store_is_keyed_by_utterance_not_batch(setup):
    hparams, teacher, datasets = setup
    attach_teacher_store(datasets["train"], teacher, hparams, "cpu")
    store = TeacherStore(hparams["teacher_store"], store_metadata(teacher, STORE_K, hparams["targets"].outputs()), TOP_K)
    last = datasets["train"][len(datasets["train"]) - 1]
    ids, _ = store[last["id"]]
    assert ids.shape == (len(last["frame_labels"]), TOP_K)
    online_ids, _ = online_topk(hparams, teacher, PaddedBatch([last]))
    assert torch.equal(ids, online_ids[0])


def test_teacher_posteriors_do_not_depend_on_batching(setup):
    hparams, teacher, datasets = setup
    long_and_short = make_batch(datasets["train"], range(len(datasets["train"])))
    ids, probs = online_topk(hparams, teacher, long_and_short)
    for i in (0, 5):
        alone_ids, alone_probs = online_topk(hparams, teacher, make_batch(datasets["train"], [i]))
        frames = alone_ids.shape[1]
        assert torch.equal(ids[i, :frames], alone_ids[0])
        assert torch.allclose(probs[i, :frames], alone_probs[0], atol=1e-5)


def test_one_store_serves_every_k_and_temperature(setup):
    hparams, teacher, datasets = setup
    attach_teacher_store(datasets["train"], teacher, hparams, "cpu")
    stamps = store_stamps(hparams["teacher_store"])
    batch_ids = [7, 1]
    for top_k, temperature in ((1, 1.0), (3, 4.0), (STORE_K, 0.5)):
        dataset = dataio_prepare(hparams)["train"]
        options = dict(hparams, top_k=top_k, temperature=temperature)
        attach_teacher_store(dataset, teacher, options, "cpu")
        batch = make_batch(dataset, batch_ids)
        wavs, wav_lens = batch.sig
        lengths = frame_counts(wav_lens, wavs.shape[1], hparams["features"])
        with torch.no_grad():
            logits = teacher(hparams["features"]["compute_features"](wavs), lengths)
        online_ids, online_probs = topk_targets(logits, top_k, temperature)
        stored_ids = batch.teacher_topk_ids.data
        stored_probs = soft_targets(batch.teacher_topk_log_probs.data, temperature)
        assert stored_ids.shape[-1] == top_k
        for i, length in enumerate(lengths.tolist()):
            assert torch.equal(stored_ids[i, :length], online_ids[i, :length])
            assert torch.allclose(stored_probs[i, :length], online_probs[i, :length], atol=2e-3)
    assert stamps == store_stamps(hparams["teacher_store"])  # read, never rewritten


def test_store_with_other_settings_is_refused(setup, tmp_path):
    hparams, teacher, datasets = setup
    attach_teacher_store(datasets["train"], teacher, hparams, "cpu")
    with pytest.raises(ValueError, match=r"other settings.*'top_k': \(8, 16\)"):
        TeacherStore(hparams["teacher_store"], store_metadata(teacher, 16, hparams["targets"].outputs()), TOP_K)
    other = dict(hparams, teacher_store_top_k=16)
    with pytest.raises(ValueError, match="top_k"):
        attach_teacher_store(datasets["train"], teacher, other, "cpu")  # refuses, never overwrites
    assert json.loads((hparams["teacher_store"] / "metadata.json").read_text())["top_k"] == STORE_K
    with pytest.raises(ValueError, match="top_k 9 exceeds the 8 labels per frame of teacher store"):
        attach_teacher_store(datasets["train"], teacher, dict(hparams, top_k=9), "cpu")


def test_incomplete_store_and_missing_utterances(setup, tmp_path):
    hparams, teacher, datasets = setup
    with pytest.raises(ValueError, match="not a complete teacher store"):
        TeacherStore(tmp_path, {}, TOP_K)
    metadata = store_metadata(teacher, STORE_K, hparams["targets"].outputs())
    dump_teacher_store(
        teacher, hparams["features"]["compute_features"], datasets["valid"], tmp_path, metadata
    )
    store = TeacherStore(tmp_path, metadata, TOP_K)
    with pytest.raises(
        ValueError, match=rf"lacks \d+ training utterance\(s\), e.g. '{datasets['train'][0]['id']}'"
    ):
        store.check_covers([datasets["train"][0]["id"]])


def test_teacher_loader_refusals(setup, trained_teacher, tmp_path):
    hparams, _, _ = setup
    with pytest.raises(ValueError, match="has no hyperparams.yaml: train the teacher first"):
        load_teacher(tmp_path, hparams["features"], hparams["targets"])
    other_features = dict(hparams["features"], n_mels=80)
    with pytest.raises(ValueError, match=r"other features.*'n_mels': \(40, 80\)"):
        load_teacher(trained_teacher, other_features, hparams["targets"])
    other_labels = FrameTargets(40, hparams["targets"].alignments)
    with pytest.raises(
        ValueError,
        match="other outputs than the student: frame targets with 31 outputs.* against frame targets with 40",
    ):
        load_teacher(trained_teacher, hparams["features"], other_labels)
    # as many labels, but other ones (e.g. another valid split chose other senones)
    labels = Path(hparams["targets"].label_inventory).read_text().splitlines()
    (tmp_path / "labels.txt").write_text("\n".join(reversed(labels)) + "\n")
    alignments = hparams["targets"].alignments
    other_inventory = FrameTargets(31, alignments, label_inventory=tmp_path / "labels.txt")
    with pytest.raises(ValueError, match="other outputs than the student: .*inventory SHA-256"):
        load_teacher(trained_teacher, hparams["features"], other_inventory)

    other_arch = tmp_path / "other"
    shutil.copytree(trained_teacher, other_arch)
    yaml_text = (other_arch / "hyperparams.yaml").read_text()
    assert "hidden_size: 128" in yaml_text
    (other_arch / "hyperparams.yaml").write_text(
        yaml_text.replace("hidden_size: 128", "hidden_size: 64")
    )
    with pytest.raises(ValueError, match="does not fit the model in"):
        load_teacher(other_arch, hparams["features"], hparams["targets"])


def test_loading_the_teacher_keeps_the_students_random_state(setup, trained_teacher):
    hparams = setup[0]
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    load_teacher(
        trained_teacher, hparams["features"], hparams["targets"]
    )  # its YAML seeds everything on load
    assert torch.equal(torch.rand(3), expected)


def dump(hparams, teacher, dataset, folder):
    """A store of ``dataset`` in shards of 3 utterances."""
    metadata = store_metadata(teacher, STORE_K, hparams["targets"].outputs())
    compute_features = hparams["features"]["compute_features"]
    dump_teacher_store(teacher, compute_features, dataset, folder, metadata, utterances_per_shard=3)
    return metadata


def test_partial_dump_resumes_at_the_missing_shards(setup, tmp_path):
    hparams, teacher, datasets = setup
    metadata = dump(hparams, teacher, datasets["train"], tmp_path)
    complete = json.loads((tmp_path / "metadata.json").read_text())
    assert len(complete["shards"]) == 4  # 12 utterances
    stamps = {path.name: path.stat().st_mtime_ns for path in tmp_path.glob("shard_*")}
    # as a kill during shard 2 leaves it: no metadata, shard 2 without its index, shard 3 absent
    (tmp_path / "metadata.json").unlink()
    (tmp_path / "shard_00002.json").unlink()
    for path in tmp_path.glob("shard_00003*"):
        path.unlink()
    (tmp_path / "shard_00001_log_probs.npy").write_bytes(b"half a file")  # and a damaged one
    dump(hparams, teacher, datasets["train"], tmp_path)
    rewritten = {
        path.name
        for path in tmp_path.glob("shard_*")
        if path.stat().st_mtime_ns != stamps.get(path.name)
    }
    assert rewritten == {
        "shard_00001_ids.npy",
        "shard_00001_log_probs.npy",
        "shard_00001.json",
        "shard_00002_ids.npy",
        "shard_00002_log_probs.npy",
        "shard_00002.json",
        "shard_00003_ids.npy",
        "shard_00003_log_probs.npy",
        "shard_00003.json",
    }  # shard 0 was complete and intact: kept
    resumed = json.loads((tmp_path / "metadata.json").read_text())
    assert resumed == complete  # same shards, offsets and checksums as the uninterrupted dump
    TeacherStore(tmp_path, metadata, TOP_K)


def test_corrupt_or_truncated_shard_is_named(setup, tmp_path, monkeypatch):
    hparams, teacher, datasets = setup
    metadata = dump(hparams, teacher, datasets["train"], tmp_path)
    shard = tmp_path / "shard_00002_log_probs.npy"
    data = bytearray(shard.read_bytes())
    data[-1] ^= 0xFF  # a flipped byte in the last log-probability
    shard.write_bytes(bytes(data))
    # opening reads the metadata and file sizes only, never the data
    monkeypatch.setattr(blend_modules.training.teacher_store, "file_sha256", None)
    store = TeacherStore(tmp_path, metadata, TOP_K)
    index = json.loads((tmp_path / "metadata.json").read_text())["utterances"]
    in_shard_2 = sorted(
        (start, utt) for utt, (shard_number, start, *_) in index.items() if shard_number == 2
    )
    first, last = in_shard_2[0][1], in_shard_2[-1][1]
    store[first]  # intact data of the damaged shard still reads
    with pytest.raises(
        ValueError, match=rf"shard .*shard_00002 holds corrupt data for utterance '{last}'"
    ):
        store[last]  # refused before it trains a model
    shard.write_bytes(bytes(data[:100]))
    with pytest.raises(ValueError, match=r"shard_00002_log_probs.npy is missing or truncated"):
        TeacherStore(tmp_path, metadata, TOP_K)


def test_damaged_shard_header_is_named(setup, tmp_path):
    """Issue 24: the shape digits of a shard's .npy header changed, its size unchanged, failed
    mid-epoch with numpy's 'mmap length is greater than file size', naming no shard."""
    hparams, teacher, datasets = setup
    metadata = dump(hparams, teacher, datasets["train"], tmp_path)
    shard = tmp_path / "shard_00001_ids.npy"
    data = shard.read_bytes()
    shape = re.search(rb"'shape': \((\d+),", data)
    bigger = b"9" * len(shape.group(1))  # more frames than the file holds, same size
    assert bigger != shape.group(1)
    shard.write_bytes(data[: shape.start(1)] + bigger + data[shape.end(1) :])
    assert shard.stat().st_size == len(data)
    store = TeacherStore(tmp_path, metadata, TOP_K)  # sizes unchanged: opens
    index = json.loads((tmp_path / "metadata.json").read_text())["utterances"]
    in_shard_1 = next(utt for utt, (number, *_) in index.items() if number == 1)
    with pytest.raises(ValueError, match=r"shard .*shard_00001_ids.npy cannot be read .*Delete"):
        store[in_shard_1]


class Unnormalized(torch.nn.Module):
    def forward(self, features, lengths):
        return features


class RandomTeacherModel(torch.nn.Module):
    """A stand-in model with many outputs: ``(features, lengths)`` to logits."""

    def __init__(self, num_labels):
        super().__init__()
        self.linear = torch.nn.Linear(40, num_labels)

    def forward(self, features, lengths):
        return 10 * self.linear(features)


def test_label_ids_beyond_int16(setup, tmp_path):
    """40,000 labels: ids are stored as int32 and read back exactly."""
    hparams, _, datasets = setup
    torch.manual_seed(0)
    model = RandomTeacherModel(40000)
    teacher = Teacher(Unnormalized(), model, hparams["features"], "random").eval()
    metadata = store_metadata(teacher, 3, {"kind": "frame", "num_labels": 40000})
    compute_features = hparams["features"]["compute_features"]
    written = dump_teacher_store(teacher, compute_features, datasets["valid"], tmp_path, metadata)
    assert written["bytes_per_frame"] == 3 * (4 + 2)
    assert np.load(tmp_path / "shard_00000_ids.npy").dtype == np.int32
    store = TeacherStore(tmp_path, metadata, 3)
    item = datasets["valid"][0]
    ids, _ = store[item["id"]]
    with torch.no_grad():
        features = compute_features(item["sig"][None])
        expected = model(features, None).topk(3, -1).indices[0]
    assert ids.max() > 32767 and torch.equal(ids, expected)

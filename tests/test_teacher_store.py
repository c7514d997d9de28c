"""The teacher loader, the offline top-k store, and online = offline blending."""

import json
import shutil

import pytest
import torch
from conftest import frame_blend
from speechbrain.dataio.batch import PaddedBatch

from blend_modules.data import dataio_prepare
from blend_modules.frames import frame_counts
from blend_modules.losses import teacher_topk
from blend_modules.targets import FrameTargets
from blend_modules.teacher import (
    TeacherStore,
    attach_teacher_store,
    dump_teacher_store,
    load_teacher,
    store_metadata,
)

TOP_K, TEMPERATURE = 4, 2.0
OUTPUTS = {"kind": "frame", "num_labels": 31}


@pytest.fixture(scope="module")
def setup(tiny_hparams, trained_teacher, tmp_path_factory):
    hparams = dict(tiny_hparams)
    hparams.update(
        top_k=TOP_K,
        temperature=TEMPERATURE,
        teacher_store=tmp_path_factory.mktemp("store"),
        teacher_store_shard_size=5,
    )
    teacher = load_teacher(trained_teacher, hparams["features"], hparams["targets"])
    datasets = dataio_prepare(hparams)
    return hparams, teacher, datasets


def make_batch(dataset, indices):
    return PaddedBatch([dataset[i] for i in indices])


def online_topk(hparams, teacher, batch):
    wavs, wav_lens = batch.sig
    lengths = frame_counts(wav_lens, wavs.shape[1], hparams["features"])
    with torch.no_grad():
        logits = teacher(hparams["features"]["compute_features"](wavs), lengths)
    return teacher_topk(logits, TOP_K, TEMPERATURE)


def test_store_round_trip_and_online_equals_offline(setup):
    hparams, teacher, datasets = setup
    summary = attach_teacher_store(datasets["train"], teacher, hparams)
    assert summary["bytes_per_frame"] == TOP_K * (2 + 2)  # int16 ids + float16 probs
    assert 0 < summary["teacher_top1"] <= 1 and summary["teacher_entropy"] >= 0

    batch = make_batch(datasets["train"], [9, 2, 5])  # not a batch the store was dumped in
    online_ids, online_probs = online_topk(hparams, teacher, batch)
    labels, label_lens = batch.frame_labels
    lengths = torch.round(label_lens * labels.shape[1]).long()
    stored_ids, stored_probs = batch.teacher_topk_ids.data, batch.teacher_topk_probs.data
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
    attach_teacher_store(datasets["train"], teacher, hparams)
    store = TeacherStore(
        hparams["teacher_store"], store_metadata(teacher, TOP_K, TEMPERATURE, OUTPUTS)
    )
    last = datasets["train"][len(datasets["train"]) - 1]
    ids, probs = store[last["id"]]
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
        assert torch.allclose(probs[i, :frames], alone_probs[0], atol=1e-6)


def test_store_with_other_settings_is_refused(setup, tmp_path):
    hparams, teacher, datasets = setup
    attach_teacher_store(datasets["train"], teacher, hparams)
    with pytest.raises(ValueError, match=r"other settings.*'top_k': \(4, 8\)"):
        TeacherStore(hparams["teacher_store"], store_metadata(teacher, 8, TEMPERATURE, OUTPUTS))
    other = dict(hparams, top_k=8)
    with pytest.raises(ValueError, match="top_k"):
        attach_teacher_store(datasets["train"], teacher, other)  # refuses, never overwrites
    assert json.loads((hparams["teacher_store"] / "metadata.json").read_text())["top_k"] == TOP_K


def test_incomplete_store_and_missing_utterances(setup, tmp_path):
    hparams, teacher, datasets = setup
    with pytest.raises(ValueError, match="not a complete teacher store"):
        TeacherStore(tmp_path, {})
    metadata = store_metadata(teacher, TOP_K, TEMPERATURE, OUTPUTS)
    dump_teacher_store(
        teacher, hparams["features"]["compute_features"], datasets["valid"], tmp_path, metadata
    )
    store = TeacherStore(tmp_path, metadata)
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
        match="other outputs than the student: frame targets with 31 outputs against frame targets with 40",
    ):
        load_teacher(trained_teacher, hparams["features"], other_labels)

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
    metadata = store_metadata(teacher, TOP_K, TEMPERATURE, OUTPUTS)
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
    (tmp_path / "shard_00001_probs.npy").write_bytes(b"half a file")  # and a damaged one
    dump(hparams, teacher, datasets["train"], tmp_path)
    rewritten = {
        path.name
        for path in tmp_path.glob("shard_*")
        if path.stat().st_mtime_ns != stamps.get(path.name)
    }
    assert rewritten == {
        "shard_00001_ids.npy",
        "shard_00001_probs.npy",
        "shard_00001.json",
        "shard_00002_ids.npy",
        "shard_00002_probs.npy",
        "shard_00002.json",
        "shard_00003_ids.npy",
        "shard_00003_probs.npy",
        "shard_00003.json",
    }  # shard 0 was complete and intact: kept
    resumed = json.loads((tmp_path / "metadata.json").read_text())
    assert resumed == complete  # same shards, offsets and checksums as the uninterrupted dump
    TeacherStore(tmp_path, metadata)


def test_corrupt_or_truncated_shard_is_named(setup, tmp_path):
    hparams, teacher, datasets = setup
    metadata = dump(hparams, teacher, datasets["train"], tmp_path)
    shard = tmp_path / "shard_00002_probs.npy"
    data = bytearray(shard.read_bytes())
    data[-1] ^= 0xFF  # one flipped bit pattern in the last probability
    shard.write_bytes(bytes(data))
    with pytest.raises(
        ValueError, match=r"shard .*shard_00002_probs.npy is missing, truncated or corrupt"
    ):
        TeacherStore(tmp_path, metadata)
    shard.write_bytes(bytes(data[:100]))
    with pytest.raises(ValueError, match=r"shard_00002_probs.npy is missing, truncated"):
        TeacherStore(tmp_path, metadata)

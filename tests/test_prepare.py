"""The FSDD connected-digits preparation: deterministic, idempotent, frame targets that fit;
and the training dataloader options built from it."""

import csv
import filecmp
import json
from pathlib import Path

import soundfile as sf
import torch
from conftest import RECIPE
from fsdd_prepare import label_names, prepare_fsdd

from blend_modules.data.alignments import read_alignments

SPEAKERS = {"train": ["george", "lucas"], "valid": ["theo"], "test": ["yweweler"]}
COUNTS = {"train": 6, "valid": 2, "test": 2}


def prepare(folder, **options):
    prepare_fsdd(RECIPE / "fsdd", folder, SPEAKERS, COUNTS, **options)
    return Path(folder)


def test_deterministic_and_idempotent(tmp_path):
    first = prepare(tmp_path / "a", snr_db=(0, 15))
    second = prepare(tmp_path / "b", snr_db=(0, 15))
    for name in ["train.csv", "train.ali", "test.ali", "labels.txt"]:
        assert filecmp.cmp(first / name, second / name, shallow=False)
    wavs = sorted(p.name for p in (first / "wav").iterdir())
    assert wavs == sorted(p.name for p in (second / "wav").iterdir())
    assert all(filecmp.cmp(first / "wav" / w, second / "wav" / w, shallow=False) for w in wavs)

    stamp = (first / "train.ali").stat().st_mtime_ns
    prepare(tmp_path / "a", snr_db=(0, 15))
    assert (first / "train.ali").stat().st_mtime_ns == stamp  # same options: skipped
    prepare(tmp_path / "a", snr_db=None)  # other options: prepared again
    assert (first / "train.ali").stat().st_mtime_ns != stamp
    assert json.loads((first / "prepare_options.json").read_text())["snr_db"] is None
    assert not filecmp.cmp(first / "wav" / wavs[0], second / "wav" / wavs[0], shallow=False)


def test_alignments_fit_features_and_labels(tiny_hparams):
    compute_features = tiny_hparams["features"]["compute_features"]
    labels = label_names()
    assert len(labels) == tiny_hparams["num_labels"] == 31
    for split in ("train", "valid", "test"):
        manifest = Path(tiny_hparams[f"{split}_csv"])
        alignments = read_alignments(tiny_hparams["targets"].alignments[split], len(labels))
        rows = list(csv.DictReader(open(manifest)))
        assert [r["ID"] for r in rows] == list(alignments)
        for row in rows:
            audio, rate = sf.read(row["wav"].replace("$data_root", str(manifest.parent)))
            assert rate == 8000
            frames = compute_features(torch.tensor(audio, dtype=torch.float32)[None]).shape[1]
            ali = alignments[row["ID"]]
            assert len(ali) == frames
            assert ali[0] == ali[-1] == 0  # leading and trailing silence
            # pauses are >= 50 ms, so each digit starts (in state 1) after silence
            onsets = [labels[x] for prev, x in zip([0, *ali[:-1]], ali) if x != 0 and prev == 0]
            assert " ".join(name.split("_")[0] for name in onsets) == row["words"]
            assert all(name.endswith("_1") for name in onsets)
            assert row["spk_id"] in {"george", "jackson", "lucas", "nicolas", "theo", "yweweler"}


def test_speaker_independent_splits(tiny_hparams):
    speakers = {
        split: {r["spk_id"] for r in csv.DictReader(open(tiny_hparams[f"{split}_csv"]))}
        for split in ("train", "valid", "test")
    }
    assert speakers["valid"] == {"theo"} and speakers["test"] == {"yweweler"}
    assert speakers["train"] <= {"george", "jackson", "lucas", "nicolas"}


def test_pauses_are_not_digital_zeros(tiny_hparams):
    manifest = Path(tiny_hparams["train_csv"])
    row = next(csv.DictReader(open(manifest)))
    audio, _ = sf.read(row["wav"].replace("$data_root", str(manifest.parent)))
    assert (audio[:400] != 0).mean() > 0.5


def test_dynamic_batching_keeps_the_other_loader_options(tiny_hparams):
    from speechbrain.dataio.sampler import DynamicBatchSampler

    from blend_modules.data.datasets import dataio_prepare, train_loader_kwargs

    hparams = dict(
        tiny_hparams,
        dynamic_batching=True,
        dynamic_batch_sampler={"max_batch_length": 10, "num_buckets": 2, "shuffle": True},
        train_dataloader_opts={"batch_size": 4, "shuffle": True, "num_workers": 2},
    )
    kwargs = train_loader_kwargs(dataio_prepare(hparams)["train"], hparams)
    assert isinstance(kwargs["batch_sampler"], DynamicBatchSampler)
    assert kwargs["num_workers"] == 2 and "batch_size" not in kwargs and "shuffle" not in kwargs

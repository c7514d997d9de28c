"""Speed-perturbed copies of the training set (issue 27, remedy b): the copies, their stretched
alignments for the hard-label control, and a blended student learning from the copies through
the teacher's soft labels only."""

import csv
import json

import numpy as np
import pytest
import soundfile as sf
from conftest import run_recipe, tiny_overrides

from blend_modules.data.alignments import read_alignments
from blend_modules.data.datasets import dataio_prepare
from blend_modules.data.frames import num_frames
from blend_modules.data.perturbation import copy_id, speed_perturb, stretched
from blend_modules.targets.frame import UNALIGNED

HOP = 80  # 10 ms at 8 kHz


def test_stretched_labels_take_the_nearest_original_frame():
    labels = np.arange(10)
    slower = stretched(labels, 0.5, 19)  # copy frame j: original frame j / 2
    assert slower[::2].tolist() == labels.tolist() and len(slower) == 19
    assert stretched(labels, 2.0, 5).tolist() == [0, 2, 4, 6, 8]
    assert stretched(labels, 1.1, 9).tolist() == [0, 1, 2, 3, 4, 6, 7, 8, 9]


@pytest.fixture
def perturbed(tiny_hparams, tmp_path):
    prepared = tiny_hparams["prepared_folder"]
    manifest, alignments = speed_perturb(
        f"{prepared}/train.csv", f"{prepared}/train.ali", 31, (0.9, 1.1), tmp_path / "sp"
    )
    return tiny_hparams, manifest, alignments


def test_copies_and_their_stretched_alignments(perturbed):
    hparams, manifest, alignments = perturbed
    originals = {r["ID"]: r for r in csv.DictReader(open(hparams["train_csv"]))}
    rows = {r["ID"]: r for r in csv.DictReader(open(manifest))}
    assert len(rows) == 3 * len(originals)
    labels = read_alignments(alignments, 31)
    for utt_id, row in originals.items():
        for factor in (0.9, 1.1):
            copy = rows[copy_id(utt_id, factor)]
            assert copy["words"] == row["words"] and copy["spk_id"] == row["spk_id"]
            assert float(copy["duration"]) == pytest.approx(
                float(row["duration"]) / factor, abs=0.002
            )
            frames = num_frames(sf.info(copy["wav"]).frames, HOP)
            assert len(labels[copy_id(utt_id, factor)]) == frames
            # the same label sequence, each run stretched by about 1 / factor
            runs = lambda a: a[np.flatnonzero(np.diff(a, prepend=-1))].tolist()  # noqa: E731
            assert runs(labels[copy_id(utt_id, factor)]) == runs(labels[utt_id])
    stamps = {path: path.stat().st_mtime_ns for path in manifest.parent.iterdir()}
    prepared = hparams["prepared_folder"]
    again = speed_perturb(
        f"{prepared}/train.csv", f"{prepared}/train.ali", 31, (0.9, 1.1), manifest.parent
    )
    assert again == (manifest, alignments)  # done: nothing rewritten
    assert stamps == {path: path.stat().st_mtime_ns for path in manifest.parent.iterdir()}


def test_copies_train_on_soft_labels_only(perturbed, tmp_path):
    """With ``soft_only_unaligned`` the copies (no alignment) stay in training with no frame a
    hard target, and the label priors come from the aligned originals alone."""
    hparams, manifest, _ = perturbed
    targets = hparams["targets"]
    dataio_prepare(hparams)  # the originals alone: their label priors
    original_priors = targets.decoder.label_log_priors.copy()
    targets.soft_only_unaligned = True
    targets.decoder.label_log_priors = None
    try:
        train = dataio_prepare(dict(hparams, train_csv=str(manifest)))["train"]
        assert len(train) == 3 * 12
        for item in train:
            copy = item["id"].startswith("sp")
            assert bool((item["frame_labels"] == UNALIGNED).all()) == copy
        assert np.array_equal(targets.decoder.label_log_priors, original_priors)
    finally:
        targets.soft_only_unaligned = False
    with pytest.raises(ValueError, match=r"utterance 'sp0.9-\S+' has no alignment"):
        dataio_prepare(dict(hparams, train_csv=str(manifest)))  # without it: refused, as before


def test_blended_student_learns_from_the_copies(trained_teacher, perturbed, tmp_path):
    root = trained_teacher.parent
    _, manifest, _ = perturbed
    overrides = tiny_overrides(root / "prepared", tmp_path / "blend")
    overrides.update(
        number_of_epochs=1,
        teacher_folder=trained_teacher,
        teacher_store=tmp_path / "store",
        train_csv=manifest,
        targets="{soft_only_unaligned: True}",
    )
    result = run_recipe("train_blend.py", "cnn_blend.yaml", overrides)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((tmp_path / "blend" / "summary.json").read_text())
    metadata = json.loads((tmp_path / "store" / "metadata.json").read_text())
    assert len(metadata["utterances"]) == 36  # the teacher labelled the copies too
    # ... and the student trained on them, with soft labels only
    original_alignments = root / "prepared" / "train.ali"
    kept = f"train: 24 of 36 utterances without alignment in {original_alignments} (soft labels"
    assert kept in result.stdout and summary["history"][0]["train"]["soft_loss"] > 0

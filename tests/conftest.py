"""Shared fixtures: a tiny prepared FSDD corpus and the recipe's hparams loaded around it."""

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from blend_modules.data.frames import frame_counts
from blend_modules.data.hparams import load_hparams_file
from blend_modules.training.losses import (
    blend_loss,
    frame_cross_entropy,
    soft_targets,
    teacher_confidence,
    teacher_topk,
)

REPO = Path(__file__).resolve().parents[1]
RECIPE = REPO / "recipes" / "FSDD" / "Blend"
sys.path.insert(0, str(RECIPE))  # fsdd_prepare lives beside the recipe's scripts

TINY_SPLITS = {"train": 12, "valid": 4, "test": 4}


def tiny_overrides(prepared_folder, output_folder, splits=TINY_SPLITS) -> dict:
    """Overrides that shrink a recipe YAML to the tiny corpus (``splits`` utterances)."""
    return {
        "corpus": {"data_folder": str(RECIPE / "fsdd"), "utterances_per_split": splits},
        "prepared_folder": str(prepared_folder),
        "output_folder": str(output_folder),
        "batch_size": 4,
        "dynamic_batching": False,
    }


@pytest.fixture(scope="session")
def tiny_hparams(tmp_path_factory):
    """The CNN recipe's hparams on a prepared tiny corpus (prepared once per session)."""
    root = tmp_path_factory.mktemp("tiny")
    hparams = load_hparams_file(
        RECIPE / "hparams" / "cnn.yaml", tiny_overrides(root / "prepared", root / "out")
    )
    hparams["prepare"]()
    return hparams


def run_recipe(
    script: str, hparams_file: str, overrides: dict, env: dict = None
) -> subprocess.CompletedProcess:
    """Run an entry script of the FSDD recipe as a user would, with ``--key=value`` overrides
    (and ``env`` added to the environment)."""
    args = [sys.executable, script, f"hparams/{hparams_file}"]
    args += [f"--{key}={value}" for key, value in overrides.items()]
    return subprocess.run(
        args,
        cwd=RECIPE,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, **(env or {})},
    )


@pytest.fixture(scope="session")
def trained_teacher(tiny_hparams):
    """A BLSTM teacher trained for two epochs on the tiny corpus by train_teacher.py."""
    root = Path(tiny_hparams["prepared_folder"]).parent
    result = run_recipe("train_teacher.py", "blstm.yaml", teacher_overrides(root))
    assert result.returncode == 0, result.stderr[-3000:]
    return root / "teacher"


def teacher_overrides(root: Path) -> dict:
    """The tiny two-epoch teacher run's overrides."""
    return {**tiny_overrides(root / "prepared", root / "teacher"), "number_of_epochs": 2}


def mean_teacher_confidence(teacher, dataset, features) -> tuple:
    """The teacher's mean top-1 probability and entropy over every frame of ``dataset``, one
    utterance at a time: what a store dump or an online epoch must report."""
    sums = torch.zeros(3, dtype=torch.float64)
    with torch.no_grad(), dataset.output_keys_as(["sig"]):
        for item in dataset:
            wav = item["sig"][None]
            lengths = frame_counts(torch.ones(1), wav.shape[1], features)
            logits = teacher(features["compute_features"](wav), lengths)
            sums += torch.tensor([float(value) for value in teacher_confidence(logits, lengths)])
    return (sums[0] / sums[2]).item(), (sums[1] / sums[2]).item()


def frame_blend(student, labels, lengths, *args, **kwargs):
    """The blend loss with frame cross-entropy as its hard term."""
    return blend_loss(
        frame_cross_entropy(student, labels, lengths), student, lengths, *args, **kwargs
    )


def topk_targets(teacher_logits, top_k, temperature=1.0):
    """The teacher's top-k label ids and their soft targets at ``temperature``, as blending
    computes them."""
    ids, log_probs = teacher_topk(teacher_logits, top_k)
    return ids, soft_targets(log_probs, temperature)


@pytest.fixture(scope="session")
def speechocean_corpus(tmp_path_factory):
    """A 4-speaker slice of the embedded speechocean762 subset (tests/speechocean_corpus.py)."""
    from speechocean_corpus import SPEAKERS, copy_corpus

    return copy_corpus(tmp_path_factory.mktemp("speechocean") / "corpus", SPEAKERS)


@pytest.fixture(scope="session")
def speechocean_prepared(speechocean_corpus):
    """The slice prepared as the recipe does: manifests, senone targets (aligned once)."""
    from speechocean_corpus import prepare

    return prepare(speechocean_corpus, speechocean_corpus.parent / "prepared")


def write_rows(path: Path, rows: list) -> Path:
    """A CSV of ``rows`` (dicts with the first row's keys as columns)."""
    with open(path, "w", newline="") as csv_file:
        writer = csv.DictWriter(csv_file, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path

"""README's "Your own corpus" path, as a new user takes it: a recipe folder copied elsewhere (at
another depth), its corpus.yaml replaced by ready manifests and alignments (no prepare
function), alignments given on the command line; and a results folder or corpus that moves."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

from conftest import RECIPE, run_recipe, tiny_overrides
from fsdd_prepare import prepare_fsdd

OWN_CORPUS = """# What the model YAMLs give
prepared_folder: !PLACEHOLDER
hop_length_ms: !PLACEHOLDER

prepare: null
train_csv: !PLACEHOLDER
valid_csv: !PLACEHOLDER
test_csv: !PLACEHOLDER
alignments:
    train: !PLACEHOLDER
    valid: !PLACEHOLDER
    test: !PLACEHOLDER
label_inventory: null
decoder: null
"""


def copy_recipe(destination: Path) -> Path:
    """The FSDD recipe's scripts and model YAMLs (not its data), its corpus.yaml replaced: the
    files README says to copy, and the one to write."""
    destination.mkdir(parents=True)
    for script in ("train_teacher.py", "train_blend.py"):
        shutil.copy(RECIPE / script, destination)
    (destination / "hparams").mkdir()
    for name in ("blstm.yaml", "cnn_blend.yaml"):
        shutil.copy(RECIPE / "hparams" / name, destination / "hparams")
        assert "fsdd" not in (RECIPE / "hparams" / name).read_text().replace("FSDD", "")
    (destination / "hparams" / "corpus.yaml").write_text(OWN_CORPUS)
    return destination


def run(recipe: Path, script: str, hparams_file: str, overrides: dict):
    args = [sys.executable, script, f"hparams/{hparams_file}"]
    args += [f"--{key}={value}" for key, value in overrides.items()]
    return subprocess.run(args, cwd=recipe, capture_output=True, text=True, timeout=600)


def test_copied_recipe_at_another_depth_with_own_manifests(tmp_path):
    corpus = tmp_path / "my_data"  # stands for any corpus: manifests, wavs, Kaldi text alignments
    prepare_fsdd(
        RECIPE / "fsdd",
        corpus,
        {"train": ["george", "lucas"], "valid": ["theo"], "test": ["yweweler"]},
        {"train": 10, "valid": 3, "test": 3},
    )
    for name in ("train", "valid", "test"):  # as hand-made files come: CRLF, a blank line
        ali = corpus / f"{name}.ali"
        ali.write_bytes(ali.read_bytes().replace(b"\n", b"\r\n") + b"\r\n")
    recipe = copy_recipe(tmp_path / "deeper" / "still" / "MyCorpus" / "Blend")
    splits = ("train", "valid", "test")
    own_corpus = {
        **{f"{split}_csv": str(corpus / f"{split}.csv") for split in splits},
        "alignments": {split: str(corpus / f"{split}.ali") for split in splits},
    }
    overrides = {
        "corpus": own_corpus,  # or written into corpus.yaml
        "results_folder": tmp_path / "results",
        "number_of_epochs": 1,
        "batch_size": 4,
        "dynamic_batching": False,
    }
    teacher = run(recipe, "train_teacher.py", "blstm.yaml", overrides)
    assert teacher.returncode == 0, teacher.stderr[-3000:]
    student = run(recipe, "train_blend.py", "cnn_blend.yaml", overrides)
    assert student.returncode == 0, student.stderr[-3000:]
    summary = json.loads((tmp_path / "results" / "cnn_blend" / "1986" / "summary.json").read_text())
    assert summary["teacher_mode"] == "offline" and 0 < summary["test_frame_acc"] <= 1
    assert not (tmp_path / "results" / "prepared").exists()  # nothing was prepared


def test_moved_results_and_corpus_are_reused(trained_teacher, tmp_path):
    """A store follows its teacher folder, and a preparation its corpus, when they move."""
    root = trained_teacher.parent
    overrides = {
        **tiny_overrides(root / "prepared", tmp_path / "blend"),
        "number_of_epochs": 1,
        "teacher_folder": trained_teacher,
        "teacher_store": tmp_path / "store",
    }
    result = run_recipe("train_blend.py", "cnn_blend.yaml", overrides)
    assert result.returncode == 0, result.stderr[-3000:]

    moved = tmp_path / "moved"
    shutil.copytree(root / "prepared", moved / "prepared")
    shutil.copytree(trained_teacher, moved / "teacher")
    shutil.copytree(tmp_path / "store", moved / "teacher" / "store")
    shutil.copytree(RECIPE / "fsdd", moved / "fsdd_copy")
    stamps = {p: p.stat().st_mtime_ns for p in moved.rglob("*") if p.is_file()}
    overrides["corpus"] = {**overrides["corpus"], "data_folder": str(moved / "fsdd_copy")}
    overrides.update(
        prepared_folder=moved / "prepared",
        teacher_folder=moved / "teacher",
        teacher_store=moved / "teacher" / "store",
        output_folder=tmp_path / "blend_again",
    )
    result = run_recipe("train_blend.py", "cnn_blend.yaml", overrides)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "already prepared" in result.stdout + result.stderr
    assert stamps == {p: p.stat().st_mtime_ns for p in stamps}  # nothing redone or rewritten
    summary = json.loads((tmp_path / "blend_again" / "summary.json").read_text())
    assert summary["bytes_per_frame"] == 31 * 4

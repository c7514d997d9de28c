"""Teacher -> store -> blended CNN, and the CNN baseline, through the real entry scripts."""

import csv
import json
import shutil
from pathlib import Path

import pytest
import soundfile as sf
import torch
from conftest import (
    RECIPE,
    mean_teacher_confidence,
    run_recipe,
    teacher_overrides,
    tiny_overrides,
)
from speechbrain.core import Stage
from speechbrain.dataio.batch import PaddedBatch

from blend_modules.data.datasets import dataio_prepare
from blend_modules.data.frames import frame_counts
from blend_modules.data.hparams import load_hparams_file
from blend_modules.deploy.inference import HybridASR
from blend_modules.training.teacher import load_teacher


def check_run(output_folder: Path) -> dict:
    summary = json.loads((output_folder / "summary.json").read_text())
    assert list((output_folder / "save").glob("CKPT+*/model.ckpt"))
    assert (output_folder / "train_log.txt").read_text().count("epoch:") == 2
    first, last = summary["history"][0]["train"]["loss"], summary["history"][-1]["train"]["loss"]
    assert last < first, summary["history"]
    assert 0 < summary["test_frame_acc"] <= 1 and 0 < summary["valid_frame_acc"] <= 1
    assert summary["parameters"] > 0 and summary["train_time_s"] > 0
    return summary


def test_teacher_run(trained_teacher):
    summary = check_run(trained_teacher)
    assert summary["model"] == "blstm"


def test_summary_has_the_best_models_fit_of_its_training_set(trained_teacher):
    """``train_eval_frame_acc``: the best checkpoint in eval mode on every training frame,
    as the teacher loaded for blending scores them one utterance at a time; not training's
    running accuracy (dropout on, weights moving)."""
    summary = check_run(trained_teacher)
    root = trained_teacher.parent
    overrides = {
        **tiny_overrides(root / "prepared", root / "fit"),
        "teacher_folder": str(trained_teacher),
    }
    hparams = load_hparams_file(RECIPE / "hparams" / "cnn_blend.yaml", overrides)
    teacher = load_teacher(trained_teacher, hparams["features"], hparams["targets"])
    train = dataio_prepare(hparams)["train"]
    metrics = hparams["targets"].metrics(Stage.TRAIN)
    with torch.no_grad(), train.output_keys_as(["id", "sig", "frame_labels"]):
        for item in train:
            batch = PaddedBatch([item])
            wav = batch.sig.data
            lengths = frame_counts(torch.ones(1), wav.shape[1], hparams["features"])
            logits = teacher(hparams["features"]["compute_features"](wav), lengths)
            metrics.append(logits, batch, lengths)
    fit = metrics.summarize()["frame_acc"]
    assert summary["train_eval_frame_acc"] == pytest.approx(fit, abs=1e-3)
    best_epoch = summary["history"][summary["best_epoch"] - 1]
    assert summary["train_eval_frame_acc"] != best_epoch["train"]["frame_acc"]


def test_rerun_of_finished_run_keeps_its_summary(trained_teacher):
    before = json.loads((trained_teacher / "summary.json").read_text())
    result = run_recipe("train_teacher.py", "blstm.yaml", teacher_overrides(trained_teacher.parent))
    assert result.returncode == 0, result.stderr[-3000:]
    after = json.loads((trained_teacher / "summary.json").read_text())
    assert after["history"] == before["history"] and len(after["history"]) == 2
    assert after["train_time_s"] == before["train_time_s"]
    assert after["test_frame_acc"] == before["test_frame_acc"]


def test_blend_offline_then_cnn_baseline(trained_teacher, tiny_hparams):
    root = trained_teacher.parent
    overrides = tiny_overrides(root / "prepared", root / "blend")
    overrides.update(
        number_of_epochs=2,
        teacher_folder=trained_teacher,
        teacher_mode="offline",
        dynamic_batching=True,
        dynamic_batch_sampler="{max_batch_length: 10, num_buckets: 3, shuffle: True, batch_ordering: random}",
    )
    result = run_recipe("train_blend.py", "cnn_blend.yaml", overrides)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = check_run(root / "blend")
    assert summary["model"] == "cnn_blend" and summary["teacher_mode"] == "offline"
    # the store keeps all 31 labels (int16 id + float16 log-prob): any top_k, any temperature
    assert summary["bytes_per_frame"] == 31 * 4 and 0 < summary["teacher_top1"] <= 1
    store = trained_teacher / "store_top31"
    assert json.loads((store / "metadata.json").read_text())["top_k"] == 31
    assert "soft_loss" in summary["history"][0]["train"]
    assert "teacher mean top-1" in result.stdout + result.stderr
    # no --device: dumped on the device the Brain trains on (SpeechBrain's guess), never None
    assert f"Dumping the teacher's top-31 store {store} on cpu." in result.stdout + result.stderr

    overrides = tiny_overrides(root / "prepared", root / "cnn")
    overrides["number_of_epochs"] = 2
    result = run_recipe("train_blend.py", "cnn.yaml", overrides)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = check_run(root / "cnn")
    assert "soft_loss" not in summary["history"][0]["train"] and "teacher_mode" not in summary


def test_ensemble_of_a_model_with_itself_is_that_model(trained_teacher):
    """evaluate_ensemble.py averages its members' posteriors: the teacher averaged with itself
    scores, decodes and writes per-utterance counts exactly as the teacher did."""
    root = trained_teacher.parent
    overrides = tiny_overrides(root / "prepared", root / "ensemble")
    overrides["ensemble_members"] = f"[{trained_teacher}, {trained_teacher}]"
    result = run_recipe("evaluate_ensemble.py", "cnn_blend.yaml", overrides)
    assert result.returncode == 0, result.stderr[-3000:]
    teacher = json.loads((trained_teacher / "summary.json").read_text())
    ensemble = json.loads((root / "ensemble" / "summary.json").read_text())
    for key in ("valid_frame_acc", "test_frame_acc", "valid_WER", "test_WER"):
        assert ensemble[key] == teacher[key], key
    assert ensemble["valid_acoustic_scale"] == teacher["valid_acoustic_scale"]
    assert ensemble["train_time_s"] == round(2 * teacher["train_time_s"], 1)
    assert ensemble["parameters"] == 2 * teacher["parameters"]
    assert len(ensemble["members"]) == 2 and "history" not in ensemble
    assert not list((root / "ensemble" / "save").glob("CKPT+*"))  # nothing trained
    for folder in (trained_teacher, root / "ensemble"):
        with open(folder / "utterances_test.csv", newline="") as csv_file:
            rows = list(csv.DictReader(csv_file))
        assert sum(int(r["correct_frames"]) for r in rows) / sum(
            int(r["frames"]) for r in rows
        ) == pytest.approx(ensemble["test_frame_acc"])
        assert 100 * sum(int(r["word_errors"]) for r in rows) / sum(
            int(r["reference_words"]) for r in rows
        ) == pytest.approx(ensemble["test_WER"])


def test_blend_online(trained_teacher):
    root = trained_teacher.parent
    overrides = tiny_overrides(root / "prepared", root / "online")
    overrides.update(number_of_epochs=2, teacher_folder=trained_teacher, teacher_mode="online")
    result = run_recipe("train_blend.py", "cnn_blend.yaml", overrides)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = check_run(root / "online")
    assert summary["teacher_mode"] == "online" and "bytes_per_frame" not in summary
    # the online teacher saw every training frame once per epoch, as it labels them alone
    overrides["teacher_folder"] = str(trained_teacher)  # as the YAML takes it
    hparams = load_hparams_file(RECIPE / "hparams" / "cnn_blend.yaml", overrides)
    teacher = load_teacher(trained_teacher, hparams["features"], hparams["targets"])
    train = dataio_prepare(hparams)["train"]
    top1, entropy = mean_teacher_confidence(teacher, train, hparams["features"])
    for epoch in summary["history"]:
        assert epoch["train"]["teacher_top1"] == pytest.approx(top1, rel=1e-4)
        assert epoch["train"]["teacher_entropy"] == pytest.approx(entropy, rel=1e-4)


def test_bad_blend_options_fail_before_training(trained_teacher, tmp_path):
    root = trained_teacher.parent
    for key, value in [("hard_weight", 1.5), ("top_k", 0), ("top_k", 32)]:
        overrides = tiny_overrides(root / "prepared", tmp_path / key)
        overrides.update({key: value, "teacher_folder": trained_teacher})
        result = run_recipe("train_blend.py", "cnn_blend.yaml", overrides)
        assert result.returncode != 0
        assert f"ValueError: {key}" in result.stdout + result.stderr
        assert not (tmp_path / key / "save").exists() or not list(
            (tmp_path / key / "save").iterdir()
        )


def test_option_of_the_wrong_type_fails_before_anything_is_written(trained_teacher, tmp_path):
    """--top_k=2.5 used to pass the range check and fail inside the store dump, leaving a
    dump_plan.json behind; every override is now type-checked against the YAML first."""
    root = trained_teacher.parent
    overrides = tiny_overrides(root / "prepared", tmp_path / "run")
    overrides.update(top_k=2.5, teacher_folder=trained_teacher, teacher_store=tmp_path / "store")
    result = run_recipe("train_blend.py", "cnn_blend.yaml", overrides)
    assert result.returncode != 0
    assert "ValueError: --top_k=2.5: top_k is an integer in hparams/cnn_blend.yaml (5)" in (
        result.stdout + result.stderr
    )
    assert not (tmp_path / "store").exists() and not (tmp_path / "run").exists()


def test_refused_rerun_leaves_a_finished_run_untouched(trained_teacher, tmp_path):
    """A rerun into a trained teacher's folder with other outputs is refused before it writes
    anything there; the teacher still loads."""
    teacher = tmp_path / "teacher"
    shutil.copytree(trained_teacher, teacher)
    before = {path: path.read_bytes() for path in teacher.rglob("*") if path.is_file()}
    overrides = {**teacher_overrides(trained_teacher.parent), "output_folder": str(teacher)}
    result = run_recipe("train_teacher.py", "blstm.yaml", {**overrides, "num_labels": 40})
    assert result.returncode != 0
    assert "holds checkpoints of another model" in result.stdout + result.stderr
    after = {path: path.read_bytes() for path in teacher.rglob("*") if path.is_file()}
    assert after == before
    hparams = load_hparams_file(RECIPE / "hparams" / "cnn.yaml", overrides)
    load_teacher(teacher, hparams["features"], hparams["targets"])


def test_frame_run_reports_words_and_transcribes_a_wav(trained_teacher, tmp_path):
    """A frame-target run decodes valid at every acoustic scale of the grid, keeps the best on
    valid and decodes test at it (WER and wer_<set>.txt); its inference folder transcribes a
    test wav exactly as decoding the trained model's outputs does."""
    summary = check_run(trained_teacher)
    grid = {
        float(key.rsplit("_", 1)[1]): value
        for key, value in summary.items()
        if key.startswith("valid_WER_at_scale_")
    }
    assert sorted(grid) == [0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0]
    assert summary["valid_acoustic_scale"] == min(grid, key=grid.get)
    on_edge = summary["valid_acoustic_scale"] in (min(grid), max(grid))
    assert summary["valid_acoustic_scale_at_grid_edge"] == on_edge
    assert summary["test_acoustic_scale"] == summary["valid_acoustic_scale"]
    assert summary["valid_WER"] == min(grid.values())
    # the reported test WER is the one of the word alignments written beside it
    wer_line = (trained_teacher / "wer_test.txt").read_text().split("\n", 1)[0]
    assert wer_line.startswith(f"%WER {summary['test_WER']:.2f} [")
    assert summary["test_decoding_frames_per_s"] > 0
    assert not any(key.startswith("test_WER_at_scale") for key in summary)
    for test_set in ("valid", "test"):
        assert "%WER" in (trained_teacher / f"wer_{test_set}.txt").read_text()

    asr = HybridASR.from_hparams(
        source=str(trained_teacher / "inference"), savedir=str(tmp_path / "asr")
    )
    hparams = load_hparams_file(
        RECIPE / "hparams" / "blstm.yaml", teacher_overrides(trained_teacher.parent)
    )
    hparams["targets"].prepare()
    row = next(csv.DictReader(open(hparams["test_csv"])))
    wav = row["wav"].replace("$data_root", str(Path(hparams["test_csv"]).parent))
    teacher = load_teacher(trained_teacher, hparams["features"], hparams["targets"])
    signal, _ = sf.read(wav, dtype="float32")
    features = hparams["features"]["compute_features"](torch.from_numpy(signal)[None])
    with torch.no_grad():
        frames = torch.tensor([features.shape[1]])
        log_posteriors = torch.log_softmax(teacher(features, frames)[0], dim=-1)
    decoder = asr.hparams.decoder
    assert decoder.acoustic_scale == summary["valid_acoustic_scale"]
    expected = " ".join(decoder.transcribe(log_posteriors.numpy()))
    assert asr.transcribe_file(wav) == expected and expected


def test_blend_from_an_ensemble_teacher(trained_teacher, tmp_path):
    """Issue 27, remedy (a): ``teacher_folder`` as a list blends from the average of the
    models' posteriors. An ensemble of the teacher with itself is that teacher: the student
    trains as from the teacher alone."""
    root = trained_teacher.parent
    summaries = {}
    for name, teacher_folder in (
        ("single", str(trained_teacher)),
        ("ensemble", f"[{trained_teacher}, {trained_teacher}]"),
    ):
        overrides = tiny_overrides(root / "prepared", tmp_path / name)
        overrides.update(number_of_epochs=1, teacher_folder=teacher_folder, teacher_mode="online")
        result = run_recipe("train_blend.py", "cnn_blend.yaml", overrides)
        assert result.returncode == 0, result.stderr[-3000:]
        summaries[name] = json.loads((tmp_path / name / "summary.json").read_text())
    single, ensemble = summaries["single"], summaries["ensemble"]
    assert ensemble["teacher"] == f"{single['teacher']} + {single['teacher']}"
    for key in ("loss", "soft_loss"):
        assert ensemble["history"][0]["train"][key] == pytest.approx(
            single["history"][0]["train"][key], rel=1e-4
        )

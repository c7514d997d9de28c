"""Senone targets from pocketsphinx's forced aligner on real utterances of the embedded
speechocean762 subset: preparation, the frame mapping, the label inventory, resuming, and bad
inputs."""

import csv
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from speechbrain.core import Stage
from speechbrain.dataio.batch import PaddedBatch
from speechbrain.dataio.dataloader import SaveableDataLoader
from speechocean_corpus import KEPT, RECIPE, SPEAKERS, prepare, prepare_speechocean

from blend_modules.alignment.aligner import (
    SenoneAligner,
    align_manifest,
    aligned_frames,
    read_aligned,
)
from blend_modules.alignment.labels import CI_STATES, read_labels
from blend_modules.alignment.lexicon import read_lexicon
from blend_modules.data.alignments import match_length, read_alignments, write_alignments
from blend_modules.data.datasets import dataio_prepare
from blend_modules.data.hparams import load_hparams_file
from blend_modules.targets.teacher_alignment import realign_training_set


@pytest.fixture
def corpus(speechocean_corpus):
    return speechocean_corpus


@pytest.fixture
def prepared(speechocean_prepared):
    return speechocean_prepared


def rows(path):
    with open(path, newline="") as csv_file:
        return list(csv.DictReader(csv_file))


def test_manifests_are_speaker_disjoint_with_age_and_gender(corpus, prepared):
    splits = {split: rows(prepared / f"{split}.csv") for split in ("train", "valid", "test")}
    speakers = {split: {row["spk_id"] for row in r} for split, r in splits.items()}
    (train_child, train_adult), (test_child, test_adult) = SPEAKERS["train"], SPEAKERS["test"]
    # one of two speakers, spread over sorted (age group, gender, id): the second, the child
    expected = {"train": {train_adult}, "valid": {train_child}, "test": {test_child, test_adult}}
    assert speakers == expected
    for split_rows in splits.values():
        for row in split_rows:
            assert row["age_group"] == (
                "child" if row["spk_id"] in (train_child, test_child) else "adult"
            )
            assert row["words"] and row["words"] == row["words"].upper()
            assert sf.info(row["wav"].replace("$data_root", str(prepared))).samplerate == 8000
    texts = dict(
        line.split(maxsplit=1) for line in (corpus / "test" / "text").read_text().splitlines()
    )
    assert all(row["words"] == texts[row["ID"]].strip() for row in splits["test"])


def test_every_utterance_aligned_and_labels_fit(prepared):
    stats = json.loads((prepared / "senone_alignment.json").read_text())
    assert all(
        s["aligned"] == s["utterances"] and not s["failed"] for s in stats["alignment"].values()
    )
    labels = read_labels(prepared / "labels.txt")
    assert [name for name, _ in labels[: len(CI_STATES)]] == CI_STATES
    assert len(labels) == stats["labels"] == len(CI_STATES) + KEPT
    assert all(len(senones) == 1 for _, senones in labels[len(CI_STATES) :])
    every_senone = [s for _, senones in labels for s in senones]
    assert len(every_senone) == len(set(every_senone))  # each senone has one label
    train = stats["splits"]["train"]
    assert 0.2 < train["silence_share"] < 0.6  # read sentences between silences
    alignments = read_alignments(prepared / "train.ali", len(labels))
    assert sum(len(a) for a in alignments.values()) == train["frames"]


@pytest.mark.parametrize("manifest", ["train.csv", "align_train.csv"])
def test_frame_mapping_to_the_centred_stft(prepared, manifest):
    """pocketsphinx labels (n - 90) // 160 frames of n samples at 16 kHz; SpeechBrain's centred
    STFT has 1-2 more, at 16 kHz and at 8 kHz. Label j (the 25.6 ms window from sample 160 j)
    is centred 2.8 ms from STFT frame j + 1 (centred on sample 160 (j + 1)), and that is where
    FrameTargets(frame_tolerance=2) puts it: the first label twice, the last padded."""
    window_centre = lambda j: (160 * j + 0.0256 * 16000 / 2) / 16000  # noqa: E731 (seconds)
    stft_centre = lambda k: k * 0.010  # noqa: E731
    assert all(abs(stft_centre(j + 1) - window_centre(j)) < 0.003 for j in range(1000))
    alignments = read_alignments(prepared / "train.ali", len(CI_STATES) + KEPT)
    originals = {row["ID"]: row["wav"] for row in rows(prepared / "align_train.csv")}
    for row in rows(prepared / manifest):
        info = sf.info(row["wav"].replace("$data_root", str(prepared)))
        hop = info.samplerate // 100
        labels = alignments[row["ID"]]
        assert len(labels) == aligned_frames(sf.info(originals[row["ID"]]).frames)
        stft_frames = info.frames // hop + 1
        assert stft_frames - len(labels) in (1, 2)
        mapped = match_length(labels, stft_frames)
        assert mapped[0] == labels[0] and (mapped[1 : len(labels) + 1] == labels).all()
        assert (mapped[len(labels) + 1 :] == labels[-1]).all()


def test_alignment_resumes_after_a_kill(prepared, tmp_path):
    cache = prepared / "aligned" / "test.jsonl"
    lines = cache.read_text().splitlines(keepends=True)
    killed = tmp_path / "test.jsonl"
    killed.write_text("".join(lines[:15]) + lines[15][:40])  # 15 written, the 16th torn
    counts, _ = align_manifest(prepared / "align_test.csv", killed, SenoneAligner())
    assert counts["aligned"] == 40
    assert read_aligned(killed) == read_aligned(cache)  # as if never killed


def test_rerun_with_another_inventory_does_not_realign(corpus, prepared, tmp_path):
    folder = tmp_path / "again"
    shutil.copytree(prepared, folder)
    caches = {p: p.stat().st_mtime_ns for p in (folder / "aligned").glob("*.jsonl")}
    prepare(corpus, folder, senones_kept=10)
    assert len(read_labels(folder / "labels.txt")) == len(CI_STATES) + 10
    assert caches == {p: p.stat().st_mtime_ns for p in caches}
    stats = json.loads((folder / "senone_alignment.json").read_text())
    assert all(s["seconds"] < 1 for s in stats["alignment"].values())


@pytest.fixture
def corpus_copy(corpus, tmp_path):
    return Path(shutil.copytree(corpus, tmp_path / "corpus"))


def replace_line(path, utt_id, new_line):
    lines = [
        new_line if line.split()[0] == utt_id else line for line in path.read_text().splitlines()
    ]
    path.write_text("\n".join(lines) + "\n")


def first_test_utterance(corpus):
    return (corpus / "test" / "text").read_text().split()[0]


def test_unknown_word_and_failed_alignment_are_left_out_and_counted(corpus_copy, tmp_path):
    utt_id = first_test_utterance(corpus_copy)
    replace_line(corpus_copy / "test" / "text", utt_id, f"{utt_id} HELLO QWXZYV")
    second = (corpus_copy / "test" / "text").read_text().split("\n")[1].split()[0]
    wav = (
        corpus_copy
        / dict(
            line.split() for line in (corpus_copy / "test" / "wav.scp").read_text().splitlines()
        )[second]
    )
    samples, rate = sf.read(wav)
    sf.write(wav, samples[:3200], rate)  # 0.2 s for a whole sentence: no alignment exists
    prepare_speechocean(corpus_copy, tmp_path / "prepared", 1, 2, 8000, KEPT)
    stats = json.loads((tmp_path / "prepared" / "senone_alignment.json").read_text())
    failed = stats["alignment"]["test"]["failed"]
    assert set(failed) == {utt_id, second}
    assert "['QWXZYV']" in failed[utt_id] and "widest beams" in failed[second]  # as spelled
    assert stats["alignment"]["test"]["aligned"] == 38
    ali = read_alignments(tmp_path / "prepared" / "test.ali", len(CI_STATES) + KEPT)
    assert utt_id not in ali and second not in ali and len(ali) == 38
    # still decoded and scored in words (WER over all 40), left out of frame accuracy only
    hparams = recipe_hparams(corpus_copy, tmp_path / "prepared", vocabulary="train")
    hparams["targets"].prepare()
    test = dataio_prepare(hparams)["test"]["test"]
    assert len(test) == 40
    metrics = hparams["targets"].metrics(Stage.TEST)
    for batch in SaveableDataLoader(test, batch_size=8, collate_fn=PaddedBatch):
        labels = batch.frame_labels.data
        lengths = torch.round(batch.frame_labels.lengths * labels.shape[1]).long()
        logits = torch.nn.functional.one_hot(labels.clamp(min=0), len(CI_STATES) + KEPT)
        metrics.append(logits.float(), batch, lengths)
        for row, utt in enumerate(batch.id):
            assert (labels[row, : lengths[row]] < 0).all() == (utt in (utt_id, second))
    stats = metrics.summarize()
    assert stats["unaligned_utterances"] == 2 and stats["frame_acc"] == 1.0
    assert len(metrics.words.best[None].scores) == 40
    assert metrics.utterances[utt_id] == metrics.utterances[second] == (0, 0)  # no frame scored


@pytest.mark.parametrize(
    "damage, error, message",
    [
        (
            "missing_audio",
            FileNotFoundError,
            r"wav.scp \(utterance '(\d+)'\): audio file .* does not exist",
        ),
        (
            "other_rate",
            ValueError,
            r"wav.scp \(utterance '(\d+)'\): .* is at 8000 Hz, expected 16000",
        ),
        ("empty_text", ValueError, r"test/text:1: '(\d+)' has no value"),
    ],
)
def test_bad_corpus_is_refused_naming_the_file(corpus_copy, tmp_path, damage, error, message):
    utt_id = first_test_utterance(corpus_copy)
    wavs = dict(
        line.split() for line in (corpus_copy / "test" / "wav.scp").read_text().splitlines()
    )
    if damage == "missing_audio":
        (corpus_copy / wavs[utt_id]).unlink()
    elif damage == "other_rate":
        samples, _ = sf.read(corpus_copy / wavs[utt_id])
        sf.write(corpus_copy / wavs[utt_id], samples[::2], 8000)
    else:
        replace_line(corpus_copy / "test" / "text", utt_id, utt_id)
    with pytest.raises(error, match=message) as refused:
        prepare_speechocean(corpus_copy, tmp_path / "prepared", 1, 2, 8000, KEPT)
    assert utt_id in str(refused.value)
    assert not (tmp_path / "prepared" / "prepare_options.json").exists()


@pytest.mark.parametrize(
    "damage, message",
    [
        ("missing_file", r"speechocean762 file not found: .*test/spk2age"),
        ("key_twice", r"test/text:2: '(\d+)' appears twice"),
        ("missing_gender", r"speechocean762 file not found: .*train/spk2gender"),
        ("key_twice", r"test/text:2: '(\d+)' appears twice"),
        ("too_many_speakers", r"test: cannot take 3 of its 2 speakers"),
        ("too_many_valid_speakers", r"train: cannot take 3 of its 2 speakers"),
    ],
)
def test_bad_corpus_files_are_refused(corpus_copy, tmp_path, damage, message):
    """Also the 2.9-hour route's (issue 26): a --data_folder without spk2age / spk2gender, more
    valid or test speakers than the corpus has; refused before aligning anything."""
    text = corpus_copy / "test" / "text"
    test_speakers, valid_speakers = 2, 1
    if damage == "missing_file":
        (corpus_copy / "test" / "spk2age").unlink()
    elif damage == "missing_gender":
        (corpus_copy / "train" / "spk2gender").unlink()
    elif damage == "too_many_valid_speakers":
        valid_speakers = 3
    elif damage == "key_twice":
        lines = text.read_text().splitlines()
        text.write_text("\n".join([lines[0], lines[0], *lines[1:]]) + "\n")
    elif damage == "too_many_speakers":
        test_speakers = 3
    with pytest.raises((ValueError, FileNotFoundError), match=message):
        prepare_speechocean(
            corpus_copy, tmp_path / "prepared", valid_speakers, test_speakers, 8000, KEPT
        )
    assert not (tmp_path / "prepared" / "aligned").exists()  # refused before aligning anything


def test_breakdown_column_missing_is_refused(corpus, prepared):
    hparams = recipe_hparams(corpus, prepared, test_breakdown="native_language")
    with pytest.raises(ValueError, match=r"valid.csv: utterance '\d+' has no 'native_language'"):
        dataio_prepare(hparams)


def test_aligner_reads_transcripts_under_the_rule_and_quotes_their_spelling(
    corpus, prepared, tmp_path
):
    """Issue 24: "Hello, world!" reached the aligner as 'hello,' / 'world!' and was left out.
    Punctuation and case no longer matter; an unknown word is quoted as the manifest spells
    it; a silence-only utterance (no words) is left out and recorded, not refused."""
    test_rows = rows(prepared / "align_test.csv")[:3]
    spoken = test_rows[0]["words"].split()
    test_rows[0]["words"] = " ".join(f"{w.capitalize()}," for w in spoken[:-1]) + f" {spoken[-1]}!"
    test_rows[1]["words"] += " Qwxzyv."
    test_rows[2]["words"] = ""
    manifest = tmp_path / "align_test.csv"
    with open(manifest, "w", newline="") as csv_file:
        writer = csv.DictWriter(csv_file, fieldnames=list(test_rows[0]))
        writer.writeheader()
        writer.writerows(test_rows)
    aligner = SenoneAligner(read_lexicon(corpus / "resource" / "lexicon.txt"))
    counts, entries = align_manifest(manifest, tmp_path / "test.jsonl", aligner)
    first, second, silent = (row["ID"] for row in test_rows)
    expected = read_aligned(prepared / "aligned" / "test.jsonl")[first]["states"]
    assert entries[first]["states"] == expected  # as the unpunctuated upper-case transcript
    assert counts["failed"] == {
        second: "words in neither dictionary nor lexicon: ['Qwxzyv.']",
        silent: "no words to align (silence only)",
    }


def test_lexicon_words_get_every_pronunciation_in_the_aligner():
    """Issue 24: the aligner took a lexicon-only word's first pronunciation while the graph
    took all; now pocketsphinx gets them all, as alternatives it chooses among."""
    aligner = SenoneAligner({"zorblaxian": ["Z AO R B L AE K S IY AH N", "Z AO R B L AE SH AH N"]})
    assert aligner.unknown_words(["zorblaxian", "qwxzyv"]) == ["qwxzyv"]
    for decoder in aligner.decoders:
        assert decoder.lookup_word("zorblaxian") == "Z AO R B L AE K S IY AH N"
        assert decoder.lookup_word("zorblaxian(2)") == "Z AO R B L AE SH AH N"


def test_silence_only_test_utterance_is_scored(corpus, prepared, tmp_path):
    """Issue 24: a test utterance with empty ``words`` was refused outright; as sclite does,
    it is scored, each word decoded in it an insertion."""
    folder = Path(shutil.copytree(prepared, tmp_path / "prepared"))
    test_rows = rows(folder / "test.csv")
    silent = test_rows[0]["ID"]
    test_rows[0]["words"] = ""
    with open(folder / "test.csv", "w", newline="") as csv_file:
        writer = csv.DictWriter(csv_file, fieldnames=list(test_rows[0]))
        writer.writeheader()
        writer.writerows(test_rows)
    hparams = recipe_hparams(corpus, folder, vocabulary="train")
    hparams["targets"].prepare()
    test = dataio_prepare(hparams)["test"]["test"]
    metrics = hparams["targets"].metrics(Stage.TEST)
    for batch in SaveableDataLoader(test, batch_size=8, collate_fn=PaddedBatch):
        labels = batch.frame_labels.data
        lengths = torch.round(batch.frame_labels.lengths * labels.shape[1]).long()
        logits = torch.nn.functional.one_hot(labels, len(CI_STATES) + KEPT).float()
        metrics.append(logits, batch, lengths)
    metrics.summarize()
    scores = {score["key"]: score for score in metrics.words.best[None].scores}
    assert len(scores) == len(test_rows) and scores[silent]["num_ref_tokens"] == 0
    assert scores[silent]["insertions"] == len(scores[silent]["hyp_tokens"]) > 0


def test_downsampled_copies_are_written_atomically(corpus_copy, tmp_path, monkeypatch):
    """Issue 24: each 8 kHz copy was written straight to its final name, and a rerun trusted
    any file there; a kill mid-write left a truncated copy that crashed evaluation later."""
    import speechocean_prepare

    real_write, written = speechocean_prepare.sf.write, []

    def killed_after_three(path, *args, **kwargs):
        if len(written) == 3:
            Path(path).write_bytes(b"fLaC half a file")
            raise KeyboardInterrupt
        real_write(path, *args, **kwargs)
        written.append(path)

    monkeypatch.setattr(speechocean_prepare.sf, "write", killed_after_three)
    with pytest.raises(KeyboardInterrupt):
        prepare_speechocean(corpus_copy, tmp_path / "prepared", 1, 2, 8000, KEPT)
    copies = sorted((tmp_path / "prepared" / "wav8k").glob("*.flac"))
    whole = [path for path in copies if ".partial" not in path.name]
    assert len(whole) == 3 and all(sf.info(path).frames > 0 for path in whole)
    assert len(copies) == 4  # the torn write kept its temporary name


def test_aligner_needs_16k_audio(prepared, tmp_path):
    with pytest.raises(ValueError, match=r"train.csv:2 .* has sample rate 8000 Hz, expected 16000"):
        align_manifest(prepared / "train.csv", tmp_path / "x.jsonl", SenoneAligner())


def test_recipe_end_to_end_on_senone_targets(corpus, prepared, tmp_path):
    """The speechocean762 recipe's scripts: teacher, then the blended CNN (offline store), on
    the aligner's targets, one epoch each."""
    overrides = {
        "corpus": f"{{data_folder: {corpus}, valid_speakers: 1, test_speakers: 2, "
        f"senones_kept: {KEPT}}}",
        "prepared_folder": prepared,
        "results_folder": tmp_path,
        "number_of_epochs": 1,
    }
    for script, hparams_file in (
        ("train_teacher.py", "blstm.yaml"),
        ("train_blend.py", "cnn_blend.yaml"),
    ):
        args = [sys.executable, script, f"hparams/{hparams_file}"]
        args += [f"--{key}={value}" for key, value in overrides.items()]
        result = subprocess.run(args, cwd=RECIPE, capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, result.stderr[-3000:]
        assert "already prepared" in result.stdout  # the fixture's preparation, reused
    summary = json.loads((tmp_path / "cnn_blend" / "1986" / "summary.json").read_text())
    assert summary["parameters"] > 1_000_000 and 0 < summary["test_frame_acc"] <= 1
    assert summary["bytes_per_frame"] == 64 * 4
    # scored in words too: the senone graph (built once, in the prepared folder), the acoustic
    # scale chosen on valid, no out-of-vocabulary test word (the lexicon is the vocabulary)
    assert (prepared / "graph" / "graph.fst").is_file()
    assert summary["test_OOV_rate"] == 0
    # the WER is the one of the hypotheses written, and words were decoded (not all deleted)
    counts = (tmp_path / "cnn_blend" / "1986" / "wer_test.txt").read_text().split("\n")[0]
    pattern = r"\[ (\d+) / (\d+), (\d+) ins, (\d+) del"
    errors, words, _, deletions = map(int, re.findall(pattern, counts)[0])
    assert summary["test_WER"] == pytest.approx(100 * errors / words, abs=0.01)
    assert deletions < words and 0 < summary["test_WER"]
    assert summary["test_acoustic_scale"] == summary["valid_acoustic_scale"]
    assert {"test_WER_child", "test_WER_adult"} <= set(summary)
    assert (tmp_path / "cnn_blend" / "1986" / "inference" / "decoder.ckpt").is_file()


def recipe_hparams(corpus, prepared, test_breakdown="age_group", **corpus_overrides):
    """The speechocean762 CNN recipe's hparams on the test corpus (``corpus_overrides``: keys of
    its corpus.yaml)."""
    corpus_overrides = {
        "data_folder": str(corpus),
        "valid_speakers": 1,
        "test_speakers": 2,
        "senones_kept": KEPT,
        **corpus_overrides,
    }
    overrides = {
        "prepared_folder": str(prepared),
        "corpus": corpus_overrides,
        "test_breakdown": test_breakdown,
    }
    return load_hparams_file(RECIPE / "hparams" / "cnn.yaml", overrides)


def test_alignment_off_by_more_than_the_tolerance_is_refused(corpus, prepared, tmp_path):
    folder = Path(shutil.copytree(prepared, tmp_path / "prepared"))
    alignments = read_alignments(folder / "test.ali", len(CI_STATES) + KEPT)
    utt_id = sorted(alignments)[3]
    alignments[utt_id] = alignments[utt_id][:-3]  # 1-2 frames short are the aligner's edges
    write_alignments(folder / "test.ali", alignments)
    hparams = recipe_hparams(corpus, folder)
    with pytest.raises(ValueError, match=rf"test.ali: utterance '{utt_id}' has \d+ frames"):
        dataio_prepare(hparams)


def test_test_metrics_per_age_group(corpus, prepared):
    """``test_breakdown: age_group`` gives test batches the manifest's column, and frame
    accuracy per group adds up to the total (weighted by frames)."""
    hparams = recipe_hparams(corpus, prepared, decoder=None)  # frame accuracy only
    test = dataio_prepare(hparams)["test"]["test"]
    metrics = hparams["targets"].metrics(Stage.TEST, group_by="age_group")
    frames = {}
    for batch in SaveableDataLoader(test, batch_size=8, collate_fn=PaddedBatch):
        labels = batch.frame_labels.data
        # a "model" right on even-numbered utterances' frames, wrong elsewhere
        logits = torch.nn.functional.one_hot(labels, len(CI_STATES) + KEPT).float()
        for row, utt_id in enumerate(batch.id):
            if int(utt_id) % 2:
                logits[row] = logits[row].roll(1, dims=-1)
        lengths = torch.round(batch.frame_labels.lengths * labels.shape[1]).long()  # frames
        metrics.append(logits, batch, lengths)
        for utt_id, group, length in zip(batch.id, batch.age_group, lengths.tolist()):
            frames.setdefault(group, {})[utt_id] = length
    stats = metrics.summarize()
    assert set(frames) == {"child", "adult"}
    for group, by_utterance in frames.items():
        right = sum(n for utt_id, n in by_utterance.items() if int(utt_id) % 2 == 0)
        assert stats[f"frame_acc_{group}"] == pytest.approx(right / sum(by_utterance.values()))
    total = sum(sum(by_utterance.values()) for by_utterance in frames.values())
    assert stats["frame_acc"] == pytest.approx(
        sum(stats[f"frame_acc_{g}"] * sum(frames[g].values()) for g in frames) / total
    )


@pytest.mark.parametrize(
    "hparams_file",
    [
        "blstm.yaml",
        "cnn.yaml",
        "cnn_blend.yaml",
        "blstm_ctc.yaml",
        "cnn_ctc.yaml",
        "cnn_ctc_blend.yaml",
    ],
)
def test_recipe_yaml_shares_the_corpus_and_features(hparams_file):
    """Every YAML of the recipe loads, and all take the same corpus (one file, corpus.yaml,
    issue 24: the corpus block was repeated in six YAMLs) and features (the CTC runs share the
    frame runs' prepared folder, so the corpus is aligned once); a corpus key overridden from
    the command line reaches the preparation."""
    hparams = load_hparams_file(RECIPE / "hparams" / hparams_file)
    frame = load_hparams_file(RECIPE / "hparams" / "cnn.yaml")
    assert hparams["sample_rate"] == frame["sample_rate"]
    for key in ("data_folder", "valid_speakers", "test_speakers", "senones_kept"):
        assert hparams["corpus"][key] == frame["corpus"][key], key
    moved = load_hparams_file(
        RECIPE / "hparams" / hparams_file,
        "corpus: {data_folder: /data/so762, valid_speakers: 6, test_speakers: 40}",
    )
    assert moved["prepare"].keywords["data_folder"] == "/data/so762"
    assert (moved["prepare"].keywords["valid_speakers"], moved["test_csv"]) == (
        6,
        hparams["test_csv"],
    )
    with pytest.raises(ValueError, match="--corpus.valid_speakers='six': .* an integer"):
        load_hparams_file(RECIPE / "hparams" / hparams_file, {"corpus": {"valid_speakers": "six"}})
    assert Path(hparams["prepared_folder"]).name == "prepared"
    assert hparams["test_breakdown"] == "age_group"
    assert hparams["num_labels"] == (100 if "ctc" in hparams_file else len(CI_STATES) + 500)


class Replay(torch.nn.Module):
    """A "model" certain of given label sequences, one utterance per call, in order."""

    def __init__(self, label_sequences, num_labels):
        super().__init__()
        self.queue, self.num_labels = list(label_sequences), num_labels

    def forward(self, features, lengths):
        labels = torch.from_numpy(match_length(self.queue.pop(0), int(lengths[0])))
        return 10.0 * torch.nn.functional.one_hot(labels, self.num_labels).float()[None]


def test_realignment_by_a_model_certain_of_the_aligners_labels(corpus, prepared, tmp_path):
    """realign.py's core: the training utterances through their transcript graphs, scored by a
    model that replays the forced aligner's labels, come back with those labels (written as
    Kaldi text, with statistics)."""
    hparams = recipe_hparams(corpus, prepared)
    train = dataio_prepare(hparams)["train"].filtered_sorted(select_n=6)
    train.set_output_keys(["id", "sig", "words"])
    num_labels = len(CI_STATES) + KEPT
    aligned = read_alignments(prepared / "train.ali", num_labels)
    teacher = Replay([aligned[item["id"]] for item in train], num_labels)
    stats = realign_training_set(
        teacher,
        train,
        hparams["features"],
        prepared,
        corpus / "resource" / "lexicon.txt",
        tmp_path / "train.ali",
        acoustic_scale=1.0,
        batch_size=1,
    )
    assert stats["realigned"] == stats["utterances"] == 6 and stats["left_out"] == 0
    assert stats["frames_changed"] == 0.0
    realigned = read_alignments(tmp_path / "train.ali", num_labels)
    for utt_id, labels in realigned.items():
        assert np.array_equal(labels, match_length(aligned[utt_id], len(labels)))

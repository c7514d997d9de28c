"""Bad corpora are refused before training, with the file, line or utterance named."""

import csv
import gzip
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import RECIPE, tiny_overrides
from speechbrain.dataio.dataset import DynamicItemDataset

from blend_modules.data.alignments import read_alignments, write_alignments
from blend_modules.data.audio import read_segment
from blend_modules.data.datasets import dataio_prepare
from blend_modules.data.hparams import load_hparams_file
from blend_modules.data.manifests import check_manifest, segment_lengths
from blend_modules.targets.frame import FrameTargets

HOP = 80  # 10 ms at 8 kHz


@pytest.fixture
def corpus(tiny_hparams, tmp_path):
    """A writable copy of the tiny valid split: (manifest, rows, alignments)."""
    source = Path(tiny_hparams["valid_csv"])
    rows = list(csv.DictReader(open(source)))
    (tmp_path / "wav").mkdir()
    for row in rows:
        name = Path(row["wav"]).name
        shutil.copy(source.parent / "wav" / name, tmp_path / "wav" / name)
    alignments = read_alignments(tiny_hparams["targets"].alignments["valid"], 31)
    return tmp_path / "valid.csv", rows, alignments


def write_manifest(path, rows):
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["ID", "duration", "wav", "spk_id", "words"])
        writer.writeheader()
        writer.writerows(rows)


def check_corpus(manifest, alignments, **target_options):
    """The checks dataio_prepare runs on a split: audio, then its frame targets."""
    num_samples = segment_lengths(check_manifest(manifest, 8000))
    write_alignments(manifest.parent / "valid.ali", alignments)
    targets = FrameTargets(31, {"valid": manifest.parent / "valid.ali"}, **target_options)
    dataset = DynamicItemDataset.from_csv(
        str(manifest), replacements={"data_root": str(manifest.parent)}
    )
    return targets.add_to_dataset(dataset, "valid", manifest, num_samples, HOP)


def wav_of(manifest, row):
    return Path(row["wav"].replace("$data_root", str(manifest.parent)))


def test_good_corpus_passes(corpus):
    manifest, rows, alignments = corpus
    write_manifest(manifest, rows)
    check_corpus(manifest, alignments)


def test_missing_audio(corpus):
    manifest, rows, alignments = corpus
    write_manifest(manifest, rows)
    wav_of(manifest, rows[1]).unlink()
    with pytest.raises(
        ValueError, match=rf"valid.csv:3 \(utterance '{rows[1]['ID']}'\).*cannot read"
    ):
        check_corpus(manifest, alignments)


def test_unreadable_audio(corpus):
    manifest, rows, alignments = corpus
    write_manifest(manifest, rows)
    wav_of(manifest, rows[0]).write_bytes(b"not a wav file at all")
    with pytest.raises(ValueError, match=rf"'{rows[0]['ID']}'.*cannot read audio"):
        check_corpus(manifest, alignments)


def test_wrong_sample_rate(corpus):
    manifest, rows, alignments = corpus
    write_manifest(manifest, rows)
    path = wav_of(manifest, rows[2])
    audio, _ = sf.read(path)
    sf.write(path, audio, 16000)
    with pytest.raises(ValueError, match=rf"'{rows[2]['ID']}'.*16000 Hz, expected 8000"):
        check_corpus(manifest, alignments)


def test_stereo_audio(corpus):
    manifest, rows, alignments = corpus
    write_manifest(manifest, rows)
    path = wav_of(manifest, rows[0])
    audio, _ = sf.read(path)
    sf.write(path, np.stack([audio, audio], axis=1), 8000)
    with pytest.raises(ValueError, match="2 channels, expected mono"):
        check_corpus(manifest, alignments)


def test_utterance_without_alignment(corpus):
    manifest, rows, alignments = corpus
    write_manifest(manifest, rows)
    del alignments[rows[3]["ID"]]
    with pytest.raises(
        ValueError, match=rf"valid.csv: utterance '{rows[3]['ID']}' has no alignment in .*valid.ali"
    ):
        check_corpus(manifest, alignments)


def test_unaligned_utterances_can_be_skipped(corpus):
    manifest, rows, alignments = corpus
    write_manifest(manifest, rows[:-1])  # the alignment file also covers an utterance more
    del alignments[rows[0]["ID"]]
    items = check_corpus(manifest, alignments, skip_unaligned=True)
    assert items.utterances == {row["ID"] for row in rows[1:-1]}


def test_frame_tolerance_absorbs_kaldi_edges_only(corpus):
    manifest, rows, alignments = corpus
    write_manifest(manifest, rows)
    utt_id = rows[1]["ID"]
    alignments[utt_id] = alignments[utt_id][1:-2]  # 3 frames short, like snip-edges
    assert check_corpus(manifest, alignments, frame_tolerance=3).utterances == {
        row["ID"] for row in rows
    }
    alignments[utt_id] = alignments[utt_id][:-1]
    with pytest.raises(ValueError, match=rf"'{utt_id}' has \d+ frames.*frame_tolerance 3"):
        check_corpus(manifest, alignments, frame_tolerance=3)


def test_alignment_with_wrong_frame_count(corpus):
    manifest, rows, alignments = corpus
    write_manifest(manifest, rows)
    alignments[rows[1]["ID"]] = alignments[rows[1]["ID"]][:-1]
    with pytest.raises(
        ValueError,
        match=rf"valid.ali: utterance '{rows[1]['ID']}' has \d+ frames, its features \d+",
    ):
        check_corpus(manifest, alignments)


def test_duplicate_utterance_id(corpus):
    manifest, rows, alignments = corpus
    write_manifest(manifest, rows + rows[:1])
    with pytest.raises(ValueError, match=rf"valid.csv:{len(rows) + 2}.*duplicate utterance ID"):
        check_corpus(manifest, alignments)


def test_empty_and_missing_manifest(tmp_path):
    write_manifest(tmp_path / "empty.csv", [])
    with pytest.raises(ValueError, match="empty.csv: the manifest has no utterances"):
        check_manifest(tmp_path / "empty.csv", 8000)
    with pytest.raises(FileNotFoundError, match="nowhere.csv"):
        check_manifest(tmp_path / "nowhere.csv", 8000)


def test_manifest_without_wav_column(tmp_path):
    (tmp_path / "m.csv").write_text("ID,duration\nu1,1.0\n")
    with pytest.raises(ValueError, match=r"m.csv: missing column\(s\) \['wav'\]"):
        check_manifest(tmp_path / "m.csv", 8000)


def test_label_out_of_range(tmp_path):
    write_alignments(tmp_path / "a.ali", {"u1": np.array([0, 3, 3]), "u2": np.array([0, 31, 0])})
    with pytest.raises(
        ValueError, match=r"a.ali:2: utterance 'u2' frame 1 has label 31, outside \[0, 31\)"
    ):
        read_alignments(tmp_path / "a.ali", 31)


def test_alignment_not_integers(tmp_path):
    (tmp_path / "a.ali").write_text("u0 0 1 2\nu1 0 1.5 2\n")
    with pytest.raises(ValueError, match=r"a.ali:2: utterance 'u1' has labels that are not int"):
        read_alignments(tmp_path / "a.ali", 31)


@pytest.mark.parametrize(
    "text",
    [
        "u0 0 1 2\nu1 3 3\n\n",  # a blank line at the end
        "u0 0 1 2\r\nu1 3 3\r\n\r\n",  # CRLF, as after editing on Windows
        "u0 0 1 2\n\n   \nu1 3 3",  # blank lines in the middle, no final newline
    ],
)
def test_alignment_text_with_blank_lines_and_crlf(tmp_path, text):
    (tmp_path / "a.ali").write_bytes(text.encode())
    read = read_alignments(tmp_path / "a.ali", 31)
    assert {k: v.tolist() for k, v in read.items()} == {"u0": [0, 1, 2], "u1": [3, 3]}


def test_alignment_line_without_labels_is_named(tmp_path):
    (tmp_path / "a.ali").write_text("u0 0 1 2\n\nu1\nu2 4\n")
    with pytest.raises(ValueError, match=r"a.ali:3: utterance 'u1' is not a non-empty vector"):
        read_alignments(tmp_path / "a.ali", 31)


def test_gzip_alignments_are_read(tmp_path):
    import kaldiio

    (tmp_path / "a.ali.gz").write_bytes(gzip.compress(b"u0 0 1 2\nu1 3 3\n"))
    labels = {"u2": np.array([5, 6], dtype=np.int32)}
    kaldiio.save_ark(str(tmp_path / "b.ark"), labels)
    (tmp_path / "b.ark.gz").write_bytes(gzip.compress((tmp_path / "b.ark").read_bytes()))
    assert read_alignments(tmp_path / "a.ali.gz", 31)["u1"].tolist() == [3, 3]
    assert read_alignments(tmp_path / "b.ark.gz", 31)["u2"].tolist() == [5, 6]
    (tmp_path / "c.ali.gz").write_bytes(gzip.compress(b"u0 0 1 2\n")[:-6])
    with pytest.raises(ValueError, match=r"c.ali.gz: a gzip file that does not decompress"):
        read_alignments(tmp_path / "c.ali.gz", 31)


@pytest.mark.parametrize(
    "column, value, message",
    [
        ("duration", "abc", "duration must be a finite number of seconds >= 0, got 'abc'"),
        ("duration", "nan", "duration must be a finite number of seconds >= 0, got 'nan'"),
        ("duration", "-3", "duration must be a finite number of seconds >= 0, got '-3'"),
        ("duration", "0", "duration must be a number of seconds > 0, got '0'"),
        ("duration", "", "duration must be a number of seconds > 0, got ''"),
        ("start", "inf", "start must be a finite number of seconds >= 0, got 'inf'"),
        ("stop", "x1", "stop must be a finite number of seconds >= 0, got 'x1'"),
    ],
)
def test_bad_duration_start_or_stop(corpus, column, value, message):
    manifest, rows, alignments = corpus
    rows = [dict(row, start="", stop="") for row in rows]
    rows[2][column] = value
    with open(manifest, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    with pytest.raises(
        ValueError, match=rf"valid.csv:4 \(utterance '{rows[2]['ID']}'\): {message}"
    ):
        check_corpus(manifest, alignments)


def test_alignment_binary_ark_round_trip(tmp_path):
    import kaldiio

    labels = {"u1": np.array([0, 4, 4, 0], dtype=np.int32), "u2": np.array([7], dtype=np.int32)}
    kaldiio.save_ark(str(tmp_path / "a.ark"), labels, scp=str(tmp_path / "a.scp"))
    for name in ("a.ark", "a.scp"):
        read = read_alignments(tmp_path / name, 31)
        assert {k: v.tolist() for k, v in read.items()} == {
            k: v.tolist() for k, v in labels.items()
        }


def test_splits_sharing_an_utterance_are_refused(tiny_hparams):
    hparams = dict(tiny_hparams, test_csv=tiny_hparams["valid_csv"])
    hparams["targets"] = FrameTargets(
        31,
        {**tiny_hparams["targets"].alignments, "test": tiny_hparams["targets"].alignments["valid"]},
    )
    first_valid = next(csv.DictReader(open(tiny_hparams["valid_csv"])))["ID"]
    with pytest.raises(
        ValueError,
        match=rf"Utterance '{first_valid}' is in .*valid.csv \(test\) and in .*valid.csv \(valid\)",
    ):
        dataio_prepare(hparams)


def test_splits_sharing_a_speaker_are_refused_or_allowed(tiny_hparams, tmp_path, caplog):
    """Issue 24: a test row whose ``spk_id`` is a training speaker trained and scored with no
    warning. Refused naming the speaker and both splits; allowed with a warning by the YAML
    switch, for corpora that are speaker-dependent by design."""
    source = Path(tiny_hparams["test_csv"])
    rows = list(csv.DictReader(open(source)))
    training_speaker = next(csv.DictReader(open(tiny_hparams["train_csv"])))["spk_id"]
    rows[0]["spk_id"] = training_speaker
    manifest = source.parent / "test_shared_speaker.csv"
    with open(manifest, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    hparams = dict(tiny_hparams, test_csv=str(manifest))
    try:
        with pytest.raises(
            ValueError,
            match=rf"1 speaker\(s\) in .*train.csv \(train\) and in .*test_shared_speaker.csv "
            rf"\(test\), e.g. '{training_speaker}'.*allow_shared_speakers",
        ):
            dataio_prepare(hparams)
        hparams["allow_shared_speakers"] = True
        datasets = dataio_prepare(hparams)
        assert len(datasets["test"]["test"]) == len(rows)
        assert f"e.g. '{training_speaker}' (allow_shared_speakers: True)" in caplog.text
    finally:
        manifest.unlink()


def test_undecodable_audio_names_file_and_utterance(corpus):
    """Issue 24: a truncated FLAC crashed evaluation with 'flac decoder lost sync', naming no
    file."""
    manifest, rows, alignments = corpus
    flac = manifest.parent / "wav" / "truncated.flac"
    samples, rate = sf.read(wav_of(manifest, rows[0]))
    sf.write(flac, samples, rate, subtype="PCM_16")
    flac.write_bytes(flac.read_bytes()[: flac.stat().st_size * 2 // 3])
    rows[0]["wav"] = "$data_root/wav/truncated.flac"
    write_manifest(manifest, [rows[0], *rows[2:]])
    check_corpus(manifest, alignments)  # its header is whole: the up-front checks pass
    write_manifest(manifest.parent / "train.csv", [rows[0], *rows[2:]])
    write_manifest(manifest, rows[1:2])
    with pytest.raises(RuntimeError, match=rf"{flac}: cannot read samples"):
        read_segment(flac)
    alignment_file = manifest.parent / "valid.ali"
    hparams = {
        "train_csv": str(manifest.parent / "train.csv"),
        "valid_csv": str(manifest),
        "features": {"sample_rate": 8000, "hop_length": 10},
        "targets": FrameTargets(31, {"train": alignment_file, "valid": alignment_file}),
        "allow_shared_speakers": True,  # the tiny splits share speakers
    }
    train = dataio_prepare(hparams)["train"]
    with pytest.raises(RuntimeError, match=rf"train.csv: utterance '{rows[0]['ID']}': {flac}"):
        train[0]


def test_refused_run_leaves_no_output_folder(tiny_hparams, tmp_path):
    """Issue 24: SpeechBrain's Checkpointer creates its folder when the YAML is loaded, so a run
    refused by the data checks (they run after loading) left an empty ``save/``. The folder now
    appears with the first checkpoint."""
    output = tmp_path / "out"
    hparams = load_hparams_file(
        RECIPE / "hparams" / "cnn.yaml",
        tiny_overrides(tiny_hparams["prepared_folder"], output),
    )
    assert not output.exists()
    checkpointer = hparams["checkpointer"]
    assert checkpointer.recover_if_possible() is None and not output.exists()
    checkpointer.save_checkpoint(meta={"epoch": 1})
    assert len(checkpointer.list_checkpoints()) == 1

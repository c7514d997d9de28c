"""The whole speechocean762 as a user downloads it (OpenSLR 101 / its GitHub repository:
``WAVE/SPEAKERnnnn/*.WAV``, Kaldi dirs, untranscribed recordings beside the listed ones), on a
tiny fake upstream tree: test speakers from a list, the test half's other speakers training,
the untranscribed audio listed apart, a listed WAV that is missing named."""

import csv
import shutil

import pytest
import soundfile as sf
from conftest import REPO
from speechocean_corpus import KALDI_FILES, SPEAKERS, prepare

from blend_modules.data.hparams import check_override_types

RECIPE = REPO / "recipes" / "SpeechOcean762" / "Blend"

HALVES, SPLITS = ("train", "test"), ("train", "valid", "test")
UNTRANSCRIBED = "09999"  # IDs of the fake untranscribed recordings: this + the speaker id


def rows(path):
    return list(csv.DictReader(open(path)))


@pytest.fixture(scope="module")
def upstream(speechocean_corpus, tmp_path_factory):
    """The 4-speaker slice laid out as upstream: 16-bit WAV named ``.WAV``, ``wav.scp``
    pointing at them, and two untranscribed recordings: one of a training speaker, one of a
    test speaker."""
    root = tmp_path_factory.mktemp("upstream") / "speechocean762"
    shutil.copytree(speechocean_corpus / "resource", root / "resource")
    for half in HALVES:
        (root / half).mkdir(parents=True)
        for name in KALDI_FILES:
            shutil.copy(speechocean_corpus / half / name, root / half / name)
        lines = []
        for line in (speechocean_corpus / half / "wav.scp").read_text().splitlines():
            utt_id, relative = line.split()
            wav = root / relative.replace(".flac", ".WAV")
            wav.parent.mkdir(parents=True, exist_ok=True)
            samples, rate = sf.read(speechocean_corpus / relative)
            sf.write(wav, samples, rate, subtype="PCM_16", format="WAV")
            lines.append(f"{utt_id}\t{wav.relative_to(root)}")
        (root / half / "wav.scp").write_text("\n".join(lines) + "\n")
    for speaker in [*SPEAKERS["train"], *SPEAKERS["test"]]:
        folder = root / "WAVE" / f"SPEAKER{speaker}"
        shutil.copy(next(folder.glob("*.WAV")), folder / f"{UNTRANSCRIBED}{speaker}.WAV")
    return root


def test_test_speakers_from_a_list_the_rest_of_the_test_half_trains(upstream, tmp_path):
    listed, other = SPEAKERS["test"]
    (tmp_path / "test_speakers.txt").write_text(f"# the comparable test set\n{listed}\n")
    folder = tmp_path / "prepared"
    prepare(
        upstream,
        folder,
        valid_speakers=1,
        test_speaker_list=str(tmp_path / "test_speakers.txt"),
        test_half_trains=True,
    )
    speakers = {split: {row["spk_id"] for row in rows(folder / f"{split}.csv")} for split in SPLITS}
    assert speakers["test"] == {listed}
    assert other in speakers["train"] and listed not in speakers["train"]
    assert all(row["wav"].startswith("$data_root/wav8k/") for row in rows(folder / "train.csv"))
    # the untranscribed recordings: the training speakers' listed, valid's and test's never
    unlabelled = rows(folder / "unlabelled.csv")
    assert {row["ID"] for row in unlabelled} == {UNTRANSCRIBED + s for s in speakers["train"]}
    assert all(row["ID"] == UNTRANSCRIBED + row["spk_id"] for row in unlabelled)
    assert all(row["words"] == "" and float(row["duration"]) > 0 for row in unlabelled)
    assert all((folder / "wav8k" / f"{row['ID']}.flac").is_file() for row in unlabelled)
    labelled = [row["ID"] for split in SPLITS for row in rows(folder / f"{split}.csv")]
    assert not any(utt_id.startswith(UNTRANSCRIBED) for utt_id in labelled)
    assert len(labelled) == 80  # every transcribed utterance, once


def test_a_listed_wav_that_is_missing_is_named(upstream, tmp_path):
    corpus = shutil.copytree(upstream, tmp_path / "corpus")
    utt_id, relative = (corpus / "test" / "wav.scp").read_text().splitlines()[0].split()
    (corpus / relative).unlink()
    missing = rf"wav.scp \(utterance '{utt_id}'\): audio file .*{relative} does not exist"
    with pytest.raises(FileNotFoundError, match=missing):
        prepare(corpus, tmp_path / "prepared")
    assert not (tmp_path / "prepared").exists()


@pytest.mark.parametrize(
    "listing, message",
    [
        ("0001\n0001\n", "speaker '0001' appears twice"),
        ("# none\n", "no speaker ids"),
        ("zz\n", r"speakers \['zz'\] are not speakers of"),
    ],
)
def test_a_bad_test_speaker_list_is_refused(upstream, tmp_path, listing, message):
    (tmp_path / "speakers.txt").write_text(listing)
    with pytest.raises(ValueError, match=message):
        prepare(upstream, tmp_path / "prepared", test_speaker_list=str(tmp_path / "speakers.txt"))


def test_the_documented_5_hour_corpus_override_is_accepted():
    """docs/SPEECHOCEAN762.md's 5-hour command (and run_5h_ablation.sh): the speaker list is a
    key of its own, so the number of test speakers keeps its integer type check."""
    corpus_yaml = RECIPE / "hparams" / "blstm.yaml"
    documented = (
        "{corpus: {data_folder: /data/so762, valid_speakers: 15, "
        "test_speaker_list: hparams/test_speakers_2.9h.txt, test_half_trains: True}}"
    )
    check_override_types(corpus_yaml, documented)
    assert "test_speaker_list: hparams/test_speakers_2.9h.txt" in (
        RECIPE / "run_5h_ablation.sh"
    ).read_text()
    with pytest.raises(ValueError, match="corpus.test_speakers is an integer"):
        check_override_types(corpus_yaml, "{corpus: {test_speakers: speakers.txt}}")

"""A 4-speaker slice of the embedded speechocean762 subset for tests (a child and an adult of
each upstream half: 80 utterances, aligned in ~10 s); the fixtures are in conftest.py."""

import shutil
import sys
from pathlib import Path

from conftest import REPO

RECIPE = REPO / "recipes" / "SpeechOcean762" / "Blend"
sys.path.insert(0, str(RECIPE))
from speechocean_prepare import prepare_speechocean  # noqa: E402

EMBEDDED = RECIPE / "speechocean762"
KEPT = 60
KALDI_FILES = ("wav.scp", "text", "utt2spk", "spk2utt", "spk2age", "spk2gender")


def first_child_and_adult(half_folder):
    ages = dict(line.split() for line in (half_folder / "spk2age").read_text().splitlines())
    by_id = sorted(ages)
    return [
        next(s for s in by_id if int(ages[s]) <= 12),
        next(s for s in by_id if int(ages[s]) > 12),
    ]


def copy_corpus(destination, speakers):
    """The embedded subset reduced to ``speakers`` (upstream half -> speaker ids): their audio
    and their lines of every Kaldi file, in the corpus's layout."""
    shutil.copytree(EMBEDDED / "resource", destination / "resource")
    for half, ids in speakers.items():
        (destination / half).mkdir(parents=True)
        utt2spk = dict(
            line.split() for line in (EMBEDDED / half / "utt2spk").read_text().splitlines()
        )
        for name in KALDI_FILES:
            lines = (EMBEDDED / half / name).read_text().splitlines()
            key_speaker = (lambda key: key) if name.startswith("spk2") else utt2spk.get
            kept = [line for line in lines if key_speaker(line.split()[0]) in ids]
            (destination / half / name).write_text("\n".join(kept) + "\n")
        for speaker in ids:
            shutil.copytree(
                EMBEDDED / "WAVE" / f"SPEAKER{speaker}", destination / "WAVE" / f"SPEAKER{speaker}"
            )
    return destination


SPEAKERS = {half: first_child_and_adult(EMBEDDED / half) for half in ("train", "test")}


def prepare(corpus, folder, **options):
    options = {
        "valid_speakers": 1,
        "test_speakers": 2,
        "sample_rate": 8000,
        "senones_kept": KEPT,
        **options,
    }
    prepare_speechocean(corpus, folder, **options)
    return Path(folder)

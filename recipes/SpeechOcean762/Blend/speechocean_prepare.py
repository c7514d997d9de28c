"""speechocean762 -> SpeechBrain manifests with senone frame targets from a forced aligner.

Reads the corpus's Kaldi-style files (``train/`` and ``test/``: ``wav.scp``, ``text``,
``utt2spk``, ``spk2age``, ``spk2gender``; the embedded subset, the shared 128-speaker copy or
OpenSLR 101's full download, ``.flac`` or ``.WAV``), never guessing anything from file names.
Splits are speaker-disjoint: valid speakers come from the upstream train half, test speakers
from the test half, chosen evenly across age group and gender. Manifests have ``ID, duration,
wav, spk_id, words, age_group, gender``. Frame targets: see
:mod:`blend_modules.alignment.senone_targets` (aligned once and cached; changing the label inventory
only rewrites the targets).

Run once on the main process by the recipe's ``prepare``; rerunning with the same options
returns at once.
"""

import csv
import json
import logging
from pathlib import Path
from typing import Dict, List

import soundfile as sf
import torchaudio

from blend_modules.alignment.aligner import SAMPLE_RATE as ALIGNER_RATE
from blend_modules.alignment.senone_targets import prepare_senone_targets
from blend_modules.data.atomic_files import write_atomically
from blend_modules.data.audio import read_segment, write_flac
from blend_modules.data.prepare_once import (
    finish_preparation,
    folder_fingerprint,
    is_prepared,
    start_preparation,
)

logger = logging.getLogger(__name__)

CHILD_MAX_AGE = 12  # the corpus's children are 6-12 years old
FIELDS = ["ID", "duration", "wav", "spk_id", "words", "age_group", "gender"]
COPY_SOURCES_FILE = "sources.json"  # each downsampled copy's original: size and mtime


def prepare_speechocean(
    data_folder: str,
    save_folder: str,
    valid_speakers: int,
    test_speakers: int,
    sample_rate: int = 16000,
    senones_kept: int = 500,
) -> None:
    """Write ``{train,valid,test}.csv``, ``{train,valid,test}.ali``, ``labels.txt`` and
    ``senone_alignment.json`` into ``save_folder``.

    Arguments
    ---------
    data_folder : str
        The corpus: holds ``train/``, ``test/`` and ``resource/lexicon.txt``.
    save_folder : str
        Where manifests, targets and the alignment cache (``aligned/``) go.
    valid_speakers, test_speakers : int
        Speakers taken from the upstream train half for valid, and from the test half for test.
    sample_rate : int
        Of the audio the models train on: 16000 (the files as they are), or 8000 (telephone
        band, like Switchboard: downsampled copies written to ``save_folder/wav8k``).
        Alignment always uses the 16 kHz originals.
    senones_kept : int
        Senones with a label of their own; the rest back off to context-independent states.
    """
    data_folder, save_folder = Path(data_folder), Path(save_folder)
    options = {
        "data": folder_fingerprint(data_folder),
        "data_folder": str(data_folder.resolve()),  # the manifests point into it
        "valid_speakers": valid_speakers,
        "test_speakers": test_speakers,
        "sample_rate": sample_rate,
        "senones_kept": senones_kept,
    }
    if is_prepared(save_folder, options):
        logger.info("speechocean762 already prepared in %s, skipping.", save_folder)
        return
    if sample_rate not in (8000, ALIGNER_RATE):
        raise ValueError(f"sample_rate must be 8000 or 16000, got {sample_rate}.")
    save_folder = start_preparation(save_folder)
    halves = {half: read_half(data_folder, half) for half in ("train", "test")}
    valid = choose_speakers(halves["train"], valid_speakers, data_folder / "train")
    test = choose_speakers(halves["test"], test_speakers, data_folder / "test")
    splits = {
        "train": [row for row in halves["train"] if row["spk_id"] not in valid],
        "valid": [row for row in halves["train"] if row["spk_id"] in valid],
        "test": [row for row in halves["test"] if row["spk_id"] in test],
    }
    for split, rows in splits.items():
        write_manifest(save_folder / f"align_{split}.csv", rows)  # 16 kHz: what the aligner reads
        if sample_rate != ALIGNER_RATE:
            rows = downsampled(rows, save_folder, sample_rate)
        write_manifest(save_folder / f"{split}.csv", rows)

    prepare_senone_targets(
        {split: save_folder / f"align_{split}.csv" for split in splits},
        save_folder,
        senones_kept,
        lexicon=data_folder / "resource" / "lexicon.txt",
    )
    finish_preparation(save_folder, options)


def read_kaldi_map(path: Path) -> Dict[str, str]:
    """A Kaldi ``key value...`` file as a dict; ``ValueError`` naming the file and line for a
    line without a value or a key given twice."""
    if not path.is_file():
        raise FileNotFoundError(f"speechocean762 file not found: {path}")
    entries = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.split(maxsplit=1)
        if len(fields) < 2 or not fields[1].strip():
            raise ValueError(f"{path}:{number}: '{fields[0]}' has no value.")
        if fields[0] in entries:
            raise ValueError(f"{path}:{number}: '{fields[0]}' appears twice.")
        entries[fields[0]] = fields[1].strip()
    return entries


def read_half(data_folder: Path, half: str) -> List[Dict]:
    """The rows of one upstream half (``train`` or ``test``), audio checked to exist."""
    folder = data_folder / half
    wavs, texts = read_kaldi_map(folder / "wav.scp"), read_kaldi_map(folder / "text")
    speakers = read_kaldi_map(folder / "utt2spk")
    ages, genders = read_kaldi_map(folder / "spk2age"), read_kaldi_map(folder / "spk2gender")
    rows = []
    for utt_id, relative in wavs.items():
        where = f"{folder / 'wav.scp'} (utterance '{utt_id}')"
        for name, table in (("text", texts), ("utt2spk", speakers)):
            if utt_id not in table:
                raise ValueError(f"{where}: no entry in {folder / name}.")
        speaker = speakers[utt_id]
        for name, table in (("spk2age", ages), ("spk2gender", genders)):
            if speaker not in table:
                raise ValueError(f"{where}: speaker '{speaker}' has no entry in {folder / name}.")
        path = (data_folder / relative).resolve()
        if not path.is_file():
            raise FileNotFoundError(f"{where}: audio file {path} does not exist.")
        info = sf.info(str(path))
        if info.samplerate != ALIGNER_RATE:
            raise ValueError(f"{where}: {path} is at {info.samplerate} Hz, expected 16000.")
        rows.append(
            {
                "ID": utt_id,
                "duration": f"{info.frames / info.samplerate:.3f}",
                "wav": str(path),
                "spk_id": speaker,
                "words": texts[utt_id],
                "age_group": "child" if int(ages[speaker]) <= CHILD_MAX_AGE else "adult",
                "gender": genders[speaker],
            }
        )
    return rows


def choose_speakers(rows: List[Dict], count: int, folder: Path) -> set:
    """``count`` speakers spread evenly over (age group, gender, id) order, so that each
    stratum is represented in proportion; deterministic."""
    speakers = sorted({(row["age_group"], row["gender"], row["spk_id"]) for row in rows})
    if not 0 < count <= len(speakers):
        raise ValueError(f"{folder}: cannot take {count} of its {len(speakers)} speakers.")
    step = len(speakers) / count
    return {speakers[int(i * step + step / 2)][2] for i in range(count)}


def write_manifest(path: Path, rows: List[Dict]) -> None:
    partial = path.with_name(path.name + ".partial")
    with open(partial, "w", newline="") as csv_file:
        writer = csv.DictWriter(csv_file, fieldnames=FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    partial.replace(path)


def downsampled(rows: List[Dict], save_folder: Path, sample_rate: int) -> List[Dict]:
    """Rows whose audio is a ``sample_rate`` copy in ``save_folder/wav8k`` (16-bit FLAC, written
    atomically: a copy that exists is whole). A copy is reused only while its original keeps
    the size and modification time it was made from (``sources.json`` records them): audio
    changed in place is copied again, never trained on stale."""
    folder = save_folder / f"wav{sample_rate // 1000}k"
    folder.mkdir(exist_ok=True)
    sources_path = folder / COPY_SOURCES_FILE
    sources = json.loads(sources_path.read_text()) if sources_path.is_file() else {}
    copies = []
    for row in rows:
        target = folder / f"{row['ID']}.flac"
        original = Path(row["wav"]).stat()
        source = f"{original.st_size} {original.st_mtime_ns}"
        if not target.is_file() or sources.get(row["ID"]) != source:
            samples = read_segment(row["wav"])
            resampled = torchaudio.functional.resample(samples, ALIGNER_RATE, sample_rate)
            write_flac(target, resampled.numpy(), sample_rate)
            sources[row["ID"]] = source
        copies.append({**row, "wav": f"$data_root/{folder.name}/{target.name}"})
    text = json.dumps(sources, indent=0, sort_keys=True).encode()
    write_atomically(sources_path, lambda stream: stream.write(text))
    return copies

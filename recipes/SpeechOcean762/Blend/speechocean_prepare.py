"""speechocean762 -> SpeechBrain manifests with senone frame targets from a forced aligner.

Reads the corpus's Kaldi-style files (``train/`` and ``test/``: ``wav.scp``, ``text``,
``utt2spk``, ``spk2age``, ``spk2gender``; the embedded subset, the shared 165-speaker copy or
the whole corpus as OpenSLR 101 and its GitHub repository lay it out, ``.flac`` or ``.WAV``),
never guessing anything from file names for labelled data. Splits are speaker-disjoint: valid
speakers come from the upstream train half, test speakers from the test half (a number chosen
evenly across age group and gender, or a list of ids), and the test half's other speakers may
join training (``test_half_trains``: the whole corpus). Manifests have ``ID, duration, wav,
spk_id, words, age_group, gender``. ``unlabelled.csv`` lists the recordings under ``WAVE/``
that no ``wav.scp`` lists (the whole corpus has 245, without transcripts), never those of valid
or test speakers: audio for a teacher's soft labels only. Frame targets: see
:mod:`blend_modules.alignment.senone_targets` (aligned once and cached; changing the label inventory
only rewrites the targets).

Run once on the main process by the recipe's ``prepare``; rerunning with the same options
returns at once.
"""

import csv
import json
import logging
from collections import Counter
from pathlib import Path
from typing import Dict, List, Optional

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
AUDIO_SUFFIXES = (".wav", ".flac")  # the upstream .WAV, the shared copy's .flac


def prepare_speechocean(
    data_folder: str,
    save_folder: str,
    valid_speakers: int,
    test_speakers: int,
    sample_rate: int = 16000,
    senones_kept: int = 500,
    test_half_trains: bool = False,
    test_speaker_list: Optional[str] = None,
) -> None:
    """Write ``{train,valid,test}.csv``, ``{train,valid,test}.ali``, ``labels.txt``,
    ``senone_alignment.json`` and ``unlabelled.csv`` into ``save_folder``.

    Arguments
    ---------
    data_folder : str
        The corpus: holds ``train/``, ``test/`` and ``resource/lexicon.txt`` (and ``WAVE/``).
    save_folder : str
        Where manifests, targets and the alignment cache (``aligned/``) go.
    valid_speakers : int
        Speakers taken from the upstream train half for valid (stratified, see
        :func:`choose_speakers`).
    test_speakers : int
        Speakers taken from the upstream test half for test (stratified); unused with
        ``test_speaker_list``.
    sample_rate : int
        Of the audio the models train on: 16000 (the files as they are), or 8000 (telephone
        band, like Switchboard: downsampled copies written to ``save_folder/wav8k``).
        Alignment always uses the 16 kHz originals.
    senones_kept : int
        Senones with a label of their own; the rest back off to context-independent states.
    test_half_trains : bool
        The upstream test half's other speakers join training (the whole corpus's 5 hours).
    test_speaker_list : str, optional
        A file of speaker ids, one per line: exactly these speakers of the upstream test half
        are test (e.g. ``hparams/test_speakers_2.9h.txt``: the 2.9-hour copy's 40, so that
        results on the whole corpus compare with it).
    """
    data_folder, save_folder = Path(data_folder), Path(save_folder)
    test_choice = read_speaker_list(test_speaker_list) if test_speaker_list else None
    options = {
        "data": folder_fingerprint(data_folder),
        "data_folder": str(data_folder.resolve()),  # the manifests point into it
        "valid_speakers": valid_speakers,
        "test_speakers": test_choice if test_choice is not None else test_speakers,
        "sample_rate": sample_rate,
        "senones_kept": senones_kept,
        "test_half_trains": test_half_trains,
    }
    if is_prepared(save_folder, options):
        logger.info("speechocean762 already prepared in %s, skipping.", save_folder)
        return
    if sample_rate not in (8000, ALIGNER_RATE):
        raise ValueError(f"sample_rate must be 8000 or 16000, got {sample_rate}.")
    halves = {half: read_half(data_folder, half) for half in ("train", "test")}
    valid = choose_speakers(halves["train"], valid_speakers, data_folder / "train")
    if test_choice is None:
        test = choose_speakers(halves["test"], test_speakers, data_folder / "test")
    else:
        test = listed_speakers(halves["test"], test_choice, test_speaker_list, data_folder / "test")
    save_folder = start_preparation(save_folder)
    splits = {
        "train": [row for row in halves["train"] if row["spk_id"] not in valid],
        "valid": [row for row in halves["train"] if row["spk_id"] in valid],
        "test": [row for row in halves["test"] if row["spk_id"] in test],
    }
    if test_half_trains:
        splits["train"] += [row for row in halves["test"] if row["spk_id"] not in test]
    held_out = valid | test
    unlabelled = unlabelled_rows(data_folder, [*halves["train"], *halves["test"]], held_out)
    for split, rows in {**splits, "unlabelled": unlabelled}.items():
        write_manifest(save_folder / f"align_{split}.csv", rows)  # 16 kHz: what the aligner reads
        if sample_rate != ALIGNER_RATE:
            rows = downsampled(rows, save_folder, sample_rate)
        write_manifest(save_folder / f"{split}.csv", rows)
    (save_folder / "align_unlabelled.csv").unlink()  # nothing to align: no transcripts

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


def read_speaker_list(path: str) -> List[str]:
    """Speaker ids, one per line (blank lines and ``#`` comments skipped); ``ValueError``
    naming the file and line for an id given twice."""
    ids = []
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), start=1):
        speaker = line.split("#", 1)[0].strip()
        if not speaker:
            continue
        if speaker in ids:
            raise ValueError(f"{path}:{number}: speaker '{speaker}' appears twice.")
        ids.append(speaker)
    if not ids:
        raise ValueError(f"{path}: no speaker ids.")
    return ids


def listed_speakers(rows: List[Dict], ids: List[str], path: str, folder: Path) -> set:
    """The speakers of ``ids`` (read from ``path``), each checked to be one of ``rows``'."""
    known = {row["spk_id"] for row in rows}
    unknown = [speaker for speaker in ids if speaker not in known]
    if unknown:
        raise ValueError(f"{path}: speakers {unknown} are not speakers of {folder}.")
    return set(ids)


def unlabelled_rows(data_folder: Path, labelled: List[Dict], held_out: set) -> List[Dict]:
    """Audio under ``WAVE/`` that no ``wav.scp`` lists (the corpus's untranscribed
    recordings), as manifest rows without ``words``: speaker from the ``SPEAKERnnnn`` folder
    (no Kaldi file names them), none of a valid or test speaker (their voices stay unheard);
    the speakers left out are logged."""
    listed = {Path(row["wav"]) for row in labelled}
    rows, skipped = [], Counter()
    for path in sorted((data_folder / "WAVE").glob("SPEAKER*/*")):
        if path.suffix.lower() not in AUDIO_SUFFIXES or path.resolve() in listed:
            continue
        speaker = path.parent.name[len("SPEAKER") :]
        if speaker in held_out:
            skipped[speaker] += 1
            continue
        info = sf.info(str(path))
        if info.samplerate != ALIGNER_RATE:
            raise ValueError(f"{path} (unlabelled) is at {info.samplerate} Hz, expected 16000.")
        duration = f"{info.frames / info.samplerate:.3f}"
        rows.append({"ID": path.stem, "duration": duration, "wav": str(path.resolve())})
        rows[-1].update(spk_id=speaker, words="", age_group="", gender="")
    if rows or skipped:
        logger.info(
            "%d unlabelled recordings (no transcript) listed; %d more of valid or test speakers "
            "%s left out.",
            len(rows),
            sum(skipped.values()),
            sorted(skipped),
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

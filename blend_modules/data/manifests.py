"""Manifests (SpeechBrain CSVs) read and checked before any training.

A manifest is a SpeechBrain CSV with at least the columns ``ID``, ``duration`` (seconds) and
``wav`` (a path; ``$data_root`` stands for the manifest's folder), plus ``words`` for CTC
targets. An utterance is a whole mono file, or with the optional columns ``start`` and
``stop`` (seconds) and ``channel`` (0-based) a segment of one channel of a longer recording,
read on the fly (e.g. Switchboard conversations). Every file, sample rate, channel and segment
is checked before any training starts (the targets then check their own inputs), so a bad corpus
fails in seconds with the file, line and utterance named."""

import csv
import io
import math
import sys
from pathlib import Path
from typing import Dict, Mapping, NamedTuple, Sequence

import numpy as np
import soundfile as sf

from blend_modules.data.atomic_files import write_atomically

REQUIRED_COLUMNS = ("ID", "duration", "wav")


FLOAT_SUBTYPES = ("FLOAT", "DOUBLE")  # the only sample formats that can hold NaN or inf


class Segment(NamedTuple):
    """Where an utterance's samples are: ``[start, stop)`` of ``channel`` of ``path``."""

    path: str
    start: int
    stop: int
    channel: int

    @property
    def num_samples(self) -> int:
        return self.stop - self.start


def audio_path(wav: str, manifest: Path) -> Path:
    """Resolve a manifest's ``wav`` entry (``$data_root`` = the manifest's folder)."""
    return Path(wav.replace("$data_root", str(manifest.parent)))


def check_manifest(manifest, sample_rate: int) -> Dict[str, Segment]:
    """Check a manifest and its audio; return each utterance's segment.

    Raises ``ValueError`` naming the file, line and utterance for missing columns, duplicate
    IDs, a ``duration``, ``start`` or ``stop`` that is not a finite number of seconds (or a
    duration that is not > 0), audio that is missing, unreadable or not at ``sample_rate``, a
    multi-channel file without a ``channel``, a channel the file lacks, a segment outside the audio,
    or NaN or infinite samples (only floating-point files can hold them, so only those are read).
    """
    manifest = Path(manifest)
    if not manifest.is_file():
        raise FileNotFoundError(f"Manifest not found: {manifest}")
    with open(manifest, newline="") as csv_file:
        reader = csv.DictReader(csv_file)
        missing = [c for c in REQUIRED_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(
                f"{manifest}: missing column(s) {missing}; header {reader.fieldnames}."
            )
        rows = list(reader)
    if not rows:
        raise ValueError(f"{manifest}: the manifest has no utterances.")

    segments, audio_info, finite_checked = {}, {}, set()
    for line, row in enumerate(rows, start=2):
        utt_id, where = row["ID"], f"{manifest}:{line} (utterance '{row['ID']}')"
        if utt_id in segments:
            raise ValueError(f"{where}: duplicate utterance ID.")
        path = audio_path(row["wav"], manifest)
        if path not in audio_info:
            try:
                audio_info[path] = sf.info(str(path))
            except Exception as error:  # soundfile raises several types for unreadable files
                raise ValueError(f"{where}: cannot read audio {path}: {error}") from error
        info = audio_info[path]
        if info.samplerate != sample_rate:
            raise ValueError(
                f"{where}: {path} has sample rate {info.samplerate} Hz, expected {sample_rate}."
            )
        duration = seconds(row, "duration", where)
        if duration is None or duration <= 0:
            raise ValueError(
                f"{where}: duration must be a number of seconds > 0, got {row['duration']!r}."
            )
        start, stop = seconds(row, "start", where), seconds(row, "stop", where)
        try:
            channel = int(row.get("channel") or 0)
        except ValueError as error:
            raise ValueError(
                f"{where}: channel must be an integer, got {row['channel']!r}."
            ) from error
        start = round((start or 0.0) * sample_rate)
        stop = round(stop * sample_rate) if stop is not None else info.frames
        if not row.get("channel") and info.channels != 1:
            raise ValueError(
                f"{where}: {path} has {info.channels} channels, expected mono "
                "(or give a 'channel' column)."
            )
        if not 0 <= channel < info.channels:
            raise ValueError(
                f"{where}: {path} has no channel {channel} ({info.channels} channels)."
            )
        if info.subtype in FLOAT_SUBTYPES and (path, channel) not in finite_checked:
            samples, _ = sf.read(str(path), dtype="float32", always_2d=True)
            bad = ~np.isfinite(samples[:, channel])
            if bad.any():
                raise ValueError(
                    f"{where}: {path} channel {channel} has {int(bad.sum())} NaN or infinite "
                    f"samples, the first at {int(np.argmax(bad)) / sample_rate:.3f} s."
                )
            finite_checked.add((path, channel))
        if not 0 <= start < stop <= info.frames:
            raise ValueError(
                f"{where}: segment [{start / sample_rate:.3f}, {stop / sample_rate:.3f}] s is "
                f"not inside {path} ({info.frames / sample_rate:.3f} s)."
            )
        segments[utt_id] = Segment(str(path), start, stop, channel)
    return segments


def seconds(row: Dict[str, str], column: str, where: str):
    """A manifest column in seconds: a finite number >= 0, or None if the column is empty or
    absent; ``ValueError`` naming ``where`` (file, line, utterance) and the column otherwise."""
    text = (row.get(column) or "").strip()
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not math.isfinite(value) or value < 0:
        raise ValueError(
            f"{where}: {column} must be a finite number of seconds >= 0, got {text!r}."
        )
    return value


def segment_lengths(segments: Dict[str, Segment]) -> Dict[str, int]:
    """Each utterance's number of samples."""
    return {utt_id: segment.num_samples for utt_id, segment in segments.items()}


def test_manifests(hparams: Dict) -> Dict[str, str]:
    """The test sets: ``test_csv`` is one manifest (named ``test``), a mapping of names to
    manifests (e.g. Switchboard and CallHome), or empty for none."""
    test_csv = hparams.get("test_csv")
    if not test_csv:
        return {}
    return dict(test_csv) if isinstance(test_csv, dict) else {"test": test_csv}


def check_column(
    rows: Mapping[str, Mapping], manifest, column: str, needed_for: str, allow_empty: bool = False
) -> None:
    """``ValueError`` naming the manifest and utterance if a row has no value in ``column`` (with
    ``allow_empty``: if the column is missing; an empty value, e.g. a silence-only utterance's
    ``words``, is one)."""
    for utt_id, row in rows.items():
        value = row.get(column)
        if value is None or (not allow_empty and not str(value).strip()):
            raise ValueError(f"{manifest}: utterance '{utt_id}' has no '{column}' ({needed_for}).")


def join_manifests(manifests: Sequence, output) -> Path:
    """One manifest of the rows of ``manifests`` in order (e.g. the training set and the
    corpus's unlabelled recordings: a transfer set for a teacher's soft labels, trained with
    ``targets: {soft_only_unaligned: True}``), their ``wav`` paths resolved (``$data_root``)
    so that the output may live anywhere; written atomically. ``ValueError`` naming the file
    if its columns differ from the first's, or naming the utterance ID found in two of them."""
    rows, columns, seen = [], None, {}
    for manifest in map(Path, manifests):
        with open(manifest, newline="") as csv_file:
            reader = csv.DictReader(csv_file)
            if columns is None:
                columns = reader.fieldnames
            elif reader.fieldnames != columns:
                raise ValueError(
                    f"{manifest}: columns {reader.fieldnames}, not those of {manifests[0]} "
                    f"({columns})."
                )
            for row in reader:
                if row["ID"] in seen:
                    raise ValueError(
                        f"{manifest}: utterance '{row['ID']}' is also in {seen[row['ID']]}."
                    )
                seen[row["ID"]] = manifest
                rows.append({**row, "wav": str(audio_path(row["wav"], manifest))})
    return write_rows(output, columns, rows)


def write_rows(path, columns: Sequence[str], rows: Sequence[Mapping]) -> Path:
    """Write a manifest's ``rows`` (dicts of ``columns``) atomically, its folder made if
    needed; returns the path."""
    text = io.StringIO(newline="")
    writer = csv.DictWriter(text, fieldnames=list(columns))
    writer.writeheader()
    writer.writerows(rows)
    data = text.getvalue().encode()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    write_atomically(Path(path), lambda stream: stream.write(data))
    return Path(path)


if __name__ == "__main__":  # python -m blend_modules.data.manifests OUTPUT INPUT [INPUT ...]
    print(join_manifests(sys.argv[2:], sys.argv[1]))

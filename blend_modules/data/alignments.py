"""Frame targets in Kaldi's alignment formats (what ``ali-to-pdf`` writes): text read here,
binary ark and scp with kaldiio."""

import gzip
import io
from pathlib import Path
from typing import Dict, Iterator, Mapping, Tuple, Union

import kaldiio
import numpy as np

PathLike = Union[str, Path]


GZIP_MAGIC = b"\x1f\x8b"


def read_alignments(path: PathLike, num_labels: int) -> Dict[str, np.ndarray]:
    """Read per-frame label ids keyed by utterance ID.

    Accepts Kaldi text (``utt-id l1 l2 ... lT`` per line, as ``ali-to-pdf ... ark,t:-`` prints;
    blank lines and CRLF line ends are fine), binary ark, either gzip-compressed or not, or an
    ``.scp`` index. Raises ``ValueError`` naming the file (and line, for text) for a line
    that does not parse, a duplicate ID, an empty alignment or a label outside
    ``[0, num_labels)``.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Alignment file not found: {path}")
    alignments = {}
    for where, utt_id, labels in _entries(path):
        labels = np.asarray(labels)
        if utt_id in alignments:
            raise ValueError(f"{where}: utterance '{utt_id}' appears twice.")
        if labels.ndim != 1 or labels.size == 0 or not np.issubdtype(labels.dtype, np.integer):
            raise ValueError(
                f"{where}: utterance '{utt_id}' is not a non-empty vector of integer labels."
            )
        bad = (labels < 0) | (labels >= num_labels)
        if bad.any():
            raise ValueError(
                f"{where}: utterance '{utt_id}' frame {int(np.argmax(bad))} has label "
                f"{int(labels[bad][0])}, outside [0, {num_labels})."
            )
        alignments[utt_id] = labels.astype(np.int64)
    return alignments


def _entries(path: Path) -> Iterator[Tuple[str, str, np.ndarray]]:
    """``(where, utt-id, labels)`` of an alignment file; ``where`` names the file (and line)."""
    if path.suffix == ".scp":
        yield from _kaldiio_entries(path, kaldiio.load_scp(str(path)).items())
        return
    data = path.read_bytes()
    if data[:2] == GZIP_MAGIC:
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as error:
            raise ValueError(f"{path}: a gzip file that does not decompress: {error}") from error
    key_end = data.find(b" ")
    if data[key_end + 1 : key_end + 3] == b"\0B":  # Kaldi's binary marker after the first key
        yield from _kaldiio_entries(path, kaldiio.load_ark(io.BytesIO(data)))
        return
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ValueError(f"{path}: neither Kaldi text nor binary alignments: {error}") from error
    for line_number, line in enumerate(text.splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        where = f"{path}:{line_number}"
        try:
            labels = np.array(fields[1:], dtype=np.int64)
        except ValueError as error:
            raise ValueError(
                f"{where}: utterance '{fields[0]}' has labels that are not integers: {error}"
            ) from error
        yield where, fields[0], labels


def _kaldiio_entries(path: Path, entries) -> Iterator[Tuple[str, str, np.ndarray]]:
    """kaldiio's (utt-id, array) pairs, its parse errors re-raised with the file named."""
    entries, last = iter(entries), None
    while True:
        try:
            last, labels = next(entries)
        except StopIteration:
            return
        except (UnicodeDecodeError, EOFError, ValueError) as error:
            after = f"after utterance '{last}'" if last else "at its first entry"
            raise ValueError(
                f"{path}: not a readable Kaldi alignment file {after}: {error}"
            ) from error
        yield str(path), last, labels


def write_alignments(path: PathLike, alignments: Mapping[str, np.ndarray]) -> None:
    """Write alignments in Kaldi text format, one ``utt-id l1 ... lT`` line per utterance."""
    with open(path, "w") as ali_file:
        for utt_id, labels in alignments.items():
            ali_file.write(f"{utt_id} {' '.join(map(str, labels.tolist()))}\n")


def match_length(labels: np.ndarray, num_frames: int) -> np.ndarray:
    """Labels cut or padded to ``num_frames``: extra frames are cut from the end; missing ones
    repeat the first label once (Kaldi's snip-edges frames start half a window late) and the
    last label for the rest."""
    missing = num_frames - len(labels)
    if missing <= 0:
        return labels[:num_frames]
    head = min(missing, 1)
    return np.pad(labels, (head, missing - head), mode="edge")

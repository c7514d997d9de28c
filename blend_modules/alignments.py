"""Frame targets in Kaldi's alignment formats (what ``ali-to-pdf`` writes), read with kaldiio."""

from pathlib import Path
from typing import Dict, Iterator, Mapping, Tuple, Union

import kaldiio
import numpy as np

PathLike = Union[str, Path]


def read_alignments(path: PathLike, num_labels: int) -> Dict[str, np.ndarray]:
    """Read per-frame label ids keyed by utterance ID.

    Accepts Kaldi text (``utt-id l1 l2 ... lT`` per line, as ``ali-to-pdf ... ark,t:-`` prints),
    binary ark, or an ``.scp`` index. Raises ``ValueError`` naming the file and utterance for a
    duplicate ID, an empty alignment or a label outside ``[0, num_labels)``.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Alignment file not found: {path}")
    alignments = {}
    for utt_id, labels in _kaldi_entries(path):
        labels = np.asarray(labels)
        if utt_id in alignments:
            raise ValueError(f"{path}: utterance '{utt_id}' appears twice.")
        if labels.ndim != 1 or labels.size == 0 or not np.issubdtype(labels.dtype, np.integer):
            raise ValueError(
                f"{path}: utterance '{utt_id}' is not a non-empty vector of integer labels."
            )
        bad = (labels < 0) | (labels >= num_labels)
        if bad.any():
            raise ValueError(
                f"{path}: utterance '{utt_id}' frame {int(np.argmax(bad))} has label "
                f"{int(labels[bad][0])}, outside [0, {num_labels})."
            )
        alignments[utt_id] = labels.astype(np.int64)
    return alignments


def _kaldi_entries(path: Path) -> Iterator[Tuple[str, np.ndarray]]:
    """kaldiio's (utt-id, array) pairs, its parse errors re-raised with the file named."""
    entries = iter(
        kaldiio.load_scp(str(path)).items()
        if path.suffix == ".scp"
        else kaldiio.load_ark(str(path))
    )
    last = None
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
        yield last, labels


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

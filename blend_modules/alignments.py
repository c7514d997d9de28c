"""Frame targets in Kaldi's alignment formats (what ``ali-to-pdf`` writes), read with kaldiio."""

from pathlib import Path
from typing import Dict, Mapping, Union

import kaldiio
import numpy as np
import torch

PathLike = Union[str, Path]


def num_frames(num_samples: int, hop: int) -> int:
    """Number of feature frames SpeechBrain's STFT (``center=True``, hop in samples) gives."""
    return num_samples // hop + 1


def hop_samples(features: Dict) -> int:
    """Frame shift in samples of a ``features`` hparams block (``sample_rate``, ``hop_length`` ms)."""
    return int(round(features["sample_rate"] * features["hop_length"] / 1000))


def frame_counts(wav_lens: torch.Tensor, max_samples: int, features: Dict) -> torch.Tensor:
    """Exact feature frame count of each utterance of a padded batch from relative wav lengths."""
    num_samples = torch.round(wav_lens * max_samples).long()
    return num_samples // hop_samples(features) + 1


def read_alignments(path: PathLike, num_labels: int) -> Dict[str, np.ndarray]:
    """Read per-frame label ids keyed by utterance ID.

    Accepts Kaldi text (``utt-id l1 l2 ... lT`` per line, as ``ali-to-pdf ... ark,t:-`` prints),
    binary ark, or an ``.scp`` index. Raises ``ValueError`` naming the file and utterance for a
    duplicate ID, an empty alignment or a label outside ``[0, num_labels)``.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Alignment file not found: {path}")
    reader = kaldiio.load_scp(str(path)) if path.suffix == ".scp" else kaldiio.load_ark(str(path))
    alignments = {}
    try:
        for utt_id, labels in reader.items() if path.suffix == ".scp" else reader:
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
    except (UnicodeDecodeError, EOFError) as error:
        raise ValueError(f"{path}: not a readable Kaldi alignment file ({error}).") from error
    return alignments


def write_alignments(path: PathLike, alignments: Mapping[str, np.ndarray]) -> None:
    """Write alignments in Kaldi text format, one ``utt-id l1 ... lT`` line per utterance."""
    with open(path, "w") as ali_file:
        for utt_id, labels in alignments.items():
            ali_file.write(f"{utt_id} {' '.join(map(str, labels.tolist()))}\n")

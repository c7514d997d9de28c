"""Frame bookkeeping shared by targets, features, models and losses (10 ms frames by default)."""

from typing import Dict, Optional

import torch


def num_frames(num_samples: int, hop: int) -> int:
    """Number of feature frames SpeechBrain's STFT (``center=True``, hop in samples) gives."""
    return num_samples // hop + 1


def hop_samples(features: Dict) -> int:
    """Frame shift in samples of a ``features`` hparams block (``sample_rate``, ``hop_length`` ms)."""
    return int(round(features["sample_rate"] * features["hop_length"] / 1000))


def fft_size(sample_rate: int, win_length_ms: float) -> int:
    """The smallest power of two that holds a window of ``win_length_ms`` at ``sample_rate``
    (256 for 25 ms at 8 kHz, 512 at 16 kHz): the STFT needs ``n_fft`` >= the window."""
    window = int(round(sample_rate * win_length_ms / 1000))
    return 1 << (window - 1).bit_length()


def frame_counts(wav_lens: torch.Tensor, max_samples: int, features: Dict) -> torch.Tensor:
    """Exact feature frame count of each utterance of a padded batch from relative wav lengths."""
    num_samples = torch.round(wav_lens * max_samples).long()
    return num_frames(num_samples, hop_samples(features))


def frame_mask(lengths: torch.Tensor, max_frames: int) -> torch.Tensor:
    """Boolean ``[batch, max_frames]`` mask of real frames from absolute frame counts."""
    return torch.arange(max_frames, device=lengths.device)[None, :] < lengths[:, None]


def relative_lengths(lengths: torch.Tensor, max_frames: int) -> torch.Tensor:
    """Frame counts as fractions of the padded length: SpeechBrain's convention for the
    ``lengths`` a model takes."""
    return lengths.float() / max_frames


def real_frames(inputs: torch.Tensor, lengths: Optional[torch.Tensor]) -> torch.Tensor:
    """Boolean ``[batch, frames]`` mask of the real frames of ``[batch, frames, ...]`` inputs
    from relative ``lengths`` (every frame if None)."""
    batch, max_frames = inputs.shape[:2]
    if lengths is None:
        return torch.ones(batch, max_frames, dtype=torch.bool, device=inputs.device)
    return frame_mask(torch.round(lengths * max_frames).long(), max_frames)

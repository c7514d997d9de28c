"""Frame bookkeeping shared by targets, features, models and losses (10 ms frames by default)."""

from typing import Dict

import torch


def num_frames(num_samples: int, hop: int) -> int:
    """Number of feature frames SpeechBrain's STFT (``center=True``, hop in samples) gives."""
    return num_samples // hop + 1


def hop_samples(features: Dict) -> int:
    """Frame shift in samples of a ``features`` hparams block (``sample_rate``, ``hop_length`` ms)."""
    return int(round(features["sample_rate"] * features["hop_length"] / 1000))


def frame_counts(wav_lens: torch.Tensor, max_samples: int, features: Dict) -> torch.Tensor:
    """Exact feature frame count of each utterance of a padded batch from relative wav lengths."""
    num_samples = torch.round(wav_lens * max_samples).long()
    return num_frames(num_samples, hop_samples(features))


def frame_mask(lengths: torch.Tensor, max_frames: int) -> torch.Tensor:
    """Boolean ``[batch, max_frames]`` mask of real frames from absolute frame counts."""
    return torch.arange(max_frames, device=lengths.device)[None, :] < lengths[:, None]


def zero_padding(features: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Set the frames of ``[batch, frames, ...]`` features beyond each utterance's length to 0
    (the global mean after normalisation), so padding looks like the zero padding a model sees
    around a single unpadded utterance."""
    mask = frame_mask(lengths, features.shape[1])
    return features * mask.view(*mask.shape, *([1] * (features.dim() - 2)))

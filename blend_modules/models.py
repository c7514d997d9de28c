"""Per-frame acoustic models that SpeechBrain does not ship as one module.

The BLSTM teacher needs no code: it is a ``speechbrain.nnet.containers.Sequential`` of
SpeechBrain's ``LSTM`` and ``Linear`` declared in YAML (``hparams/models/blstm_*.yaml``).
"""

from typing import Sequence

import torch
from torch import nn

from blend_modules.frames import num_frames, zero_padding


class VGGFrameCNN(nn.Module):
    """A VGG-style CNN that emits one output per input frame.

    Blocks of 3x3 convolutions (+ batch norm + activation) run over (time, frequency). Pooling
    is over frequency only and the time padding keeps the frame count, so the time receptive
    field is the model's frame context: ``1 + 2 * sum(time_dilations)`` frames. Dilating in time
    widens that context at no cost in parameters or compute. A fully connected head maps each
    frame's (channels x frequency) map to ``num_labels`` logits.

    Arguments
    ---------
    num_features : int
        Feature bins per frame (e.g. 40 mel bands).
    num_labels : int
        Output classes per frame.
    channels : sequence of int
        Output channels of each 3x3 convolution; its length is the conv depth.
    time_dilations : sequence of int
        Dilation in time of each convolution (same length as ``channels``).
    freq_pooling : sequence of int
        Max-pooling factor over frequency after each convolution (1 = none).
    hidden_sizes : sequence of int
        Widths of the fully connected layers before the output layer.
    dropout : float
        Dropout before each fully connected layer.
    activation : type
        Activation module class, e.g. ``torch.nn.ReLU``.

    Example
    -------
    >>> model = VGGFrameCNN(40, 31, [8, 8], [1, 2], [2, 2], [32])
    >>> model(torch.rand(4, 100, 40)).shape
    torch.Size([4, 100, 31])
    """

    def __init__(
        self,
        num_features: int,
        num_labels: int,
        channels: Sequence[int],
        time_dilations: Sequence[int],
        freq_pooling: Sequence[int],
        hidden_sizes: Sequence[int] = (),
        dropout: float = 0.0,
        activation: type = nn.ReLU,
    ):
        super().__init__()
        if not len(channels) == len(time_dilations) == len(freq_pooling):
            raise ValueError(
                "channels, time_dilations and freq_pooling must have one entry per conv layer, "
                f"got {len(channels)}, {len(time_dilations)} and {len(freq_pooling)}."
            )
        layers, in_channels, freq_bins = [], 1, num_features
        for out_channels, dilation, pool in zip(channels, time_dilations, freq_pooling):
            layers += [
                nn.Conv2d(
                    in_channels,
                    out_channels,
                    kernel_size=3,
                    padding=(dilation, 1),
                    dilation=(dilation, 1),
                ),
                nn.BatchNorm2d(out_channels),
                activation(),
            ]
            if pool > 1:
                layers.append(nn.MaxPool2d(kernel_size=(1, pool), ceil_mode=True))
                freq_bins = -(-freq_bins // pool)
            in_channels = out_channels
        self.convs = nn.Sequential(*layers)

        head, in_size = [], in_channels * freq_bins
        for hidden in hidden_sizes:
            head += [nn.Dropout(dropout), nn.Linear(in_size, hidden), activation()]
            in_size = hidden
        head += [nn.Dropout(dropout), nn.Linear(in_size, num_labels)]
        self.head = nn.Sequential(*head)
        self.context_frames = 1 + 2 * sum(time_dilations)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """Map ``[batch, frames, features]`` to ``[batch, frames, num_labels]`` logits."""
        maps = self.convs(features.unsqueeze(1))  # [batch, channels, frames, freq]
        batch, channels, frames, freq = maps.shape
        return self.head(maps.permute(0, 2, 1, 3).reshape(batch, frames, channels * freq))


class FeatureEncoder(nn.Module):
    """Waveforms to per-frame log-probabilities: features, normalisation, model.

    The ``encoder`` of the inference folder that ``speechbrain.inference.ASR.EncoderASR`` loads;
    it applies exactly the training-time front end (padding set to zero after normalisation).
    """

    def __init__(
        self, compute_features: nn.Module, normalize: nn.Module, model: nn.Module, hop_samples: int
    ):
        super().__init__()
        self.compute_features, self.normalize, self.model = compute_features, normalize, model
        self.hop_samples = hop_samples

    def forward(self, wavs: torch.Tensor, wav_lens: torch.Tensor) -> torch.Tensor:
        """``[batch, samples]`` waveforms and relative lengths to ``[batch, frames, labels]``."""
        features = self.normalize(self.compute_features(wavs), wav_lens)
        num_samples = torch.round(wav_lens * wavs.shape[1]).long()
        lengths = num_frames(num_samples, self.hop_samples)
        return torch.log_softmax(self.model(zero_padding(features, lengths)), dim=-1)

"""Per-frame acoustic models whose outputs do not depend on how utterances are batched.

Both take SpeechBrain's ``(inputs, lengths)`` with relative ``lengths``, and an utterance's
outputs are the same alone or padded in a batch with longer ones (eval mode; in training,
batch norm statistics are taken over real frames only). The teacher that labels data is then
the teacher that trained, whatever the batching, and it can label padded batches.
"""

import copy
from typing import Optional, Sequence

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_weights

from blend_modules.frames import num_frames, real_frames, relative_lengths


def reverse_within_lengths(inputs: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Reverse each sequence of ``[batch, frames, ...]`` within its own real frames (given by the
    ``[batch, frames]`` mask), leaving the padding where it is. Its own inverse."""
    lengths = mask.sum(1, keepdim=True)
    steps = torch.arange(inputs.shape[1], device=inputs.device)[None, :]
    order = torch.where(steps < lengths, lengths - 1 - steps, steps)
    return inputs.gather(1, order.view(*order.shape, *[1] * (inputs.dim() - 2)).expand_as(inputs))


class BLSTM(nn.Module):
    """Bidirectional LSTM layers whose backward direction starts at each utterance's last real
    frame, not inside the padding.

    A padded bidirectional ``nn.LSTM`` runs its backward direction from the end of the padded
    batch, so an utterance's outputs depend on its batch-mates; packing the sequences fixes that
    but measured 4-10x slower on CPU (``benchmarks/padding_invariance.py``). Here the backward
    LSTM runs on each sequence reversed within its own length, so padding always trails and
    never reaches a real frame: exact, at the speed of padded batches.

    Arguments
    ---------
    input_size : int
        Features per input frame.
    hidden_size : int
        Units per direction.
    num_layers : int
        Stacked bidirectional layers.
    dropout : float
        Dropout on the inputs of every layer but the first (as ``nn.LSTM``'s).

    Example
    -------
    >>> blstm = BLSTM(40, 16, num_layers=2)
    >>> blstm(torch.rand(3, 50, 40), torch.tensor([1.0, 0.5, 0.2])).shape
    torch.Size([3, 50, 32])
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int, dropout: float = 0.0):
        super().__init__()
        sizes = [input_size] + [2 * hidden_size] * (num_layers - 1)
        self.forward_lstms = nn.ModuleList(
            nn.LSTM(size, hidden_size, batch_first=True) for size in sizes
        )
        self.backward_lstms = nn.ModuleList(
            nn.LSTM(size, hidden_size, batch_first=True) for size in sizes
        )
        self.dropout = nn.Dropout(dropout)

    def forward(self, inputs: torch.Tensor, lengths: Optional[torch.Tensor] = None) -> torch.Tensor:
        """``[batch, frames, input_size]`` and relative lengths to ``[batch, frames, 2 * hidden]``
        (outputs beyond an utterance's length are meaningless)."""
        mask = real_frames(inputs, lengths)
        outputs = inputs
        for layer, (forward_lstm, backward_lstm) in enumerate(
            zip(self.forward_lstms, self.backward_lstms)
        ):
            if layer > 0:
                outputs = self.dropout(outputs)
            backward, _ = backward_lstm(reverse_within_lengths(outputs, mask))
            forward, _ = forward_lstm(outputs)
            outputs = torch.cat([forward, reverse_within_lengths(backward, mask)], dim=-1)
        return outputs


class MaskedBatchNorm2d(nn.Module):
    """Batch norm over the channels of ``[batch, channels, frames, freq]`` maps whose training
    statistics (batch and running) come from real frames only.

    Not a subclass of ``nn.BatchNorm2d`` on purpose: SpeechBrain converts those to
    ``SyncBatchNorm`` under DDP, which knows no mask; under DDP each process therefore
    normalises with its own batch's statistics.
    """

    def __init__(self, channels: int, momentum: float = 0.1, eps: float = 1e-5):
        super().__init__()
        self.momentum, self.eps = momentum, eps
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.register_buffer("running_mean", torch.zeros(channels))
        self.register_buffer("running_var", torch.ones(channels))

    def forward(self, maps: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Normalise ``maps``; ``mask`` is the ``[batch, frames]`` mask of real frames."""
        if not self.training:
            return nn.functional.batch_norm(
                maps, self.running_mean, self.running_var, self.weight, self.bias, eps=self.eps
            )
        dtype, maps = maps.dtype, maps.float()  # statistics in fp32, also under autocast
        weights = mask[:, None, :, None].float()
        count = weights.sum() * maps.shape[3]
        mean = (maps * weights).sum((0, 2, 3)) / count
        centred = maps - mean[None, :, None, None]
        var = (centred.square() * weights).sum((0, 2, 3)) / count
        with torch.no_grad():  # running variance unbiased, as nn.BatchNorm2d keeps it
            self.running_mean.lerp_(mean.detach(), self.momentum)
            unbiased = var.detach() * count / (count - 1).clamp(min=1)
            self.running_var.lerp_(unbiased, self.momentum)
        scale = self.weight * torch.rsqrt(var + self.eps)
        return (centred * scale[None, :, None, None] + self.bias[None, :, None, None]).to(dtype)


class VGGFrameCNN(nn.Module):
    """A VGG-style CNN that emits one output per input frame.

    Blocks of 3x3 convolutions (+ batch norm + activation) run over (time, frequency). Pooling
    is over frequency only and the time padding keeps the frame count, so the time receptive
    field is the model's frame context: ``1 + 2 * sum(time_dilations)`` frames. Dilating in time
    widens that context at no cost in parameters or compute. A fully connected head maps each
    frame's (channels x frequency) map to ``num_labels`` logits.

    Every map is zeroed beyond each utterance's length before the next convolution, so a padded
    utterance sees the same zeros past its end as one alone; batch norm takes its training
    statistics over real frames only (:class:`MaskedBatchNorm2d`).

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
    >>> model(torch.rand(4, 100, 40), torch.tensor([1.0, 0.9, 0.5, 0.3])).shape
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
        self.convs, self.norms, self.pools = nn.ModuleList(), nn.ModuleList(), nn.ModuleList()
        in_channels, freq_bins = 1, num_features
        for out_channels, dilation, pool in zip(channels, time_dilations, freq_pooling):
            self.convs.append(
                nn.Conv2d(
                    in_channels,
                    out_channels,
                    kernel_size=3,
                    padding=(dilation, 1),
                    dilation=(dilation, 1),
                )
            )
            self.norms.append(MaskedBatchNorm2d(out_channels))
            self.pools.append(
                nn.MaxPool2d(kernel_size=(1, pool), ceil_mode=True) if pool > 1 else nn.Identity()
            )
            freq_bins = -(-freq_bins // pool)
            in_channels = out_channels
        self.activation = activation()

        head, in_size = [], in_channels * freq_bins
        for hidden in hidden_sizes:
            head += [nn.Dropout(dropout), nn.Linear(in_size, hidden), activation()]
            in_size = hidden
        head += [nn.Dropout(dropout), nn.Linear(in_size, num_labels)]
        self.head = nn.Sequential(*head)
        self.context_frames = 1 + 2 * sum(time_dilations)

    def forward(
        self, features: torch.Tensor, lengths: Optional[torch.Tensor] = None
    ) -> torch.Tensor:
        """Map ``[batch, frames, features]`` and relative lengths to ``[batch, frames,
        num_labels]`` logits."""
        mask = real_frames(features, lengths)
        keep = mask[:, None, :, None].to(features.dtype)
        maps = features.unsqueeze(1) * keep  # [batch, channels, frames, freq]
        for conv, norm, pool in zip(self.convs, self.norms, self.pools):
            maps = pool(self.activation(norm(conv(maps), mask)) * keep)
        batch, channels, frames, freq = maps.shape
        return self.head(maps.permute(0, 2, 1, 3).reshape(batch, frames, channels * freq))


class FoldedBatchNorm(nn.Module):
    """A :class:`MaskedBatchNorm2d` folded into the convolution before it: nothing left to do."""

    def forward(self, maps: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return maps


def fold_batch_norm(model: VGGFrameCNN) -> VGGFrameCNN:
    """An inference copy of ``model`` (eval mode) with each batch norm's running statistics and
    affine transform folded into the weights and bias of its convolution: the same outputs
    without the pass over every map that batch norm costs. ``model`` is left unchanged.

    Example
    -------
    >>> model = VGGFrameCNN(40, 31, [8, 8], [1, 2], [2, 2], [32]).eval()
    >>> features, lengths = torch.rand(2, 50, 40), torch.tensor([1.0, 0.6])
    >>> torch.allclose(fold_batch_norm(model)(features, lengths), model(features, lengths))
    True
    """
    folded = copy.deepcopy(model).eval()
    for index, (conv, norm) in enumerate(zip(folded.convs, folded.norms)):
        conv.weight, conv.bias = fuse_conv_bn_weights(
            conv.weight,
            conv.bias,
            norm.running_mean,
            norm.running_var,
            norm.eps,
            norm.weight,
            norm.bias,
        )
        folded.norms[index] = FoldedBatchNorm()
    return folded


class FeatureEncoder(nn.Module):
    """Waveforms to per-frame log-probabilities: features, normalisation, model.

    The ``encoder`` of the inference folder that ``speechbrain.inference.ASR.EncoderASR`` loads;
    it applies exactly the training-time front end.
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
        lengths = relative_lengths(num_frames(num_samples, self.hop_samples), features.shape[1])
        return torch.log_softmax(self.model(features, lengths), dim=-1)


class PosteriorAverage(nn.Module):
    """A simple ensemble: the average of its members' per-frame posteriors, as log-probabilities
    (what the paper compares blending with). Members take unnormalised features and each
    utterance's number of frames, as :class:`blend_modules.teacher.Teacher` does."""

    def __init__(self, members: Sequence[nn.Module]):
        super().__init__()
        self.members = nn.ModuleList(members)

    def forward(self, features: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """``[batch, frames, labels]`` log of the mean of the members' posteriors."""
        log_posteriors = torch.stack(
            [torch.log_softmax(member(features, lengths), dim=-1) for member in self.members]
        )
        return torch.logsumexp(log_posteriors, dim=0) - torch.log(
            torch.tensor(float(len(self.members)))
        )

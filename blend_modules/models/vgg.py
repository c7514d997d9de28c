"""The student's network: a deep VGG-style CNN over a window of frames, with batch norm over
real frames only, and its batch norm folded into the convolutions for inference.

Like :class:`blend_modules.models.blstm.BLSTM` it takes SpeechBrain's ``(inputs, lengths)``
with relative ``lengths``, and an utterance's outputs are the same alone or padded in a batch
with longer ones (eval mode; in training, batch norm statistics are taken over real frames
only). The teacher that labels data is then the teacher that trained, whatever the batching."""

import copy
from typing import Optional, Sequence

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_weights

from blend_modules.data.frames import real_frames


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

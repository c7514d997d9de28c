"""Streaming inference for the VGG CNN: feature frames in, as they arrive, and the same per-frame
outputs as the whole utterance gives out, each after a bounded look-ahead.

A convolution of :class:`blend_modules.models.vgg.VGGFrameCNN` is a 3-tap filter in time with
dilation ``d``: its output at frame t needs its input at t − d, t and t + d; everything else in
the model (batch norm in eval mode, activation, pooling over frequency, the head) works frame by
frame. :class:`StreamingCNN` keeps, per convolution, the last ``2 d`` input frames it has seen,
and computes that layer's output for a frame as soon as the frame ``d`` later has arrived: no
frame is computed twice, and the look-ahead of the whole model is ``sum(d)`` frames, the right
half of its receptive field. Before the first frame and after the last, each layer sees zeros,
as the whole-utterance model does (its time padding, and the maps it zeroes past an utterance's
end). The BLSTM teacher cannot do this: its backward direction reads the utterance from the end.
"""

from typing import List

import torch
from torch import nn

from blend_modules.models.vgg import VGGFrameCNN


class StreamingCNN:
    """Runs a trained :class:`VGGFrameCNN` (in eval mode) over an utterance that arrives in
    chunks of feature frames: :meth:`accept` returns the outputs of every frame whose
    look-ahead has arrived, :meth:`finish` those of the last ``lookahead_frames`` frames.
    ``normalize`` (e.g. the run's ``InputNormalization``, which in eval mode works frame by
    frame) is applied to each chunk first: exact only for statistics fixed in training
    (``norm_type: global``); per-sentence or per-batch statistics would differ chunk by chunk,
    and are refused.

    Example
    -------
    >>> model = VGGFrameCNN(40, 31, [8, 8], [1, 2], [2, 2], [32]).eval()
    >>> features = torch.rand(100, 40)
    >>> stream = StreamingCNN(model)
    >>> chunks = [stream.accept(chunk) for chunk in features.split(16)] + [stream.finish()]
    >>> torch.allclose(torch.cat(chunks), model(features[None])[0], atol=1e-5)
    True
    """

    def __init__(self, model: VGGFrameCNN, normalize: nn.Module = None):
        norm_type = getattr(normalize, "norm_type", "global")
        if norm_type != "global":
            raise ValueError(
                f"StreamingCNN: normalize has norm_type '{norm_type}', whose statistics change "
                "with every chunk; only 'global' normalisation streams exactly."
            )
        self.model, self.normalize = model.eval(), normalize
        if normalize is not None:
            normalize.eval()
        self.dilations = [conv.dilation[0] for conv in model.convs]
        self.lookahead_frames = sum(self.dilations)
        self.reset()

    def reset(self) -> None:
        """Forget the utterance so far: the next :meth:`accept` starts a new one."""
        self.pending: List[torch.Tensor] = []  # per layer: the input frames still needed

    def latency_frames(self, chunk_frames: int) -> int:
        """Algorithmic latency of the first frame of a chunk, in frames: it waits for the rest
        of its chunk and for the model's look-ahead."""
        return chunk_frames + self.lookahead_frames

    @torch.no_grad()
    def accept(self, features: torch.Tensor) -> torch.Tensor:
        """The next ``[frames, features]`` of the utterance; returns ``[ready, num_labels]``
        logits of the frames now complete (``ready`` may be 0)."""
        if self.normalize is not None:
            features = self.normalize(features[None], torch.ones(1))[0]
        maps = features[None, None]  # [1, channels, frames, freq], as the model's maps
        if not self.pending:
            if maps.shape[2] == 0:  # the layers' buffers take their shapes from a first frame
                return torch.zeros(0, self.model.head[-1].out_features)
            self._start(maps)
        return self._push(maps, last=False)

    @torch.no_grad()
    def finish(self) -> torch.Tensor:
        """The end of the utterance: logits of its remaining frames; then :meth:`reset`."""
        if not self.pending:
            raise RuntimeError("finish() before any accept(): no utterance to finish.")
        logits = self._push(None, last=True)
        self.reset()
        return logits

    def _start(self, maps: torch.Tensor) -> None:
        """Each layer starts with the zeros before the utterance's first frame (``d`` frames
        of its input's shape)."""
        layers = zip(self.model.convs, self.model.norms, self.model.pools, self.dilations)
        for conv, norm, pool, dilation in layers:
            self.pending.append(maps.new_zeros(*maps.shape[:2], dilation, maps.shape[3]))
            maps = pool(self.model.activation(norm(conv(maps[:, :, :1]), None)))

    def _push(self, maps: torch.Tensor, last: bool) -> torch.Tensor:
        """Run ``[1, channels, frames, freq]`` new input frames (None: none) through every
        layer, each keeping the ``2 d`` input frames its next outputs still need."""
        layers = zip(self.model.convs, self.model.norms, self.model.pools, self.dilations)
        for layer, (conv, norm, pool, dilation) in enumerate(layers):
            window = (
                self.pending[layer] if maps is None else torch.cat([self.pending[layer], maps], 2)
            )
            if last:  # the zeros after the utterance's last frame
                window = torch.cat([window, torch.zeros_like(window[:, :, :dilation])], 2)
            self.pending[layer] = window[:, :, max(window.shape[2] - 2 * dilation, 0) :]
            if window.shape[2] <= 2 * dilation:  # no frame has both neighbours yet
                maps = None
                continue
            # the convolution without time padding: the frames with both neighbours
            maps = nn.functional.conv2d(
                window, conv.weight, conv.bias, padding=(0, 1), dilation=conv.dilation
            )
            maps = pool(self.model.activation(norm(maps, None)))
        if maps is None:
            return torch.zeros(0, self.model.head[-1].out_features)
        _, channels, frames, freq = maps.shape
        return self.model.head(maps.permute(0, 2, 1, 3).reshape(frames, channels * freq))


def stream_utterance(
    stream: StreamingCNN, features: torch.Tensor, chunk_frames: int
) -> torch.Tensor:
    """All ``[frames, num_labels]`` logits of a ``[frames, features]`` utterance fed to
    ``stream`` ``chunk_frames`` at a time."""
    outputs = [stream.accept(chunk) for chunk in features.split(chunk_frames)]
    return torch.cat(outputs + [stream.finish()])

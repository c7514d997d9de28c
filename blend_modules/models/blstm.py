"""The teacher's network: a bidirectional LSTM over frames whose outputs do not depend on how
utterances are batched (the backward direction starts at each utterance's own last frame)."""

from typing import Optional

import torch
from torch import nn

from blend_modules.data.frames import real_frames


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

"""The simple ensemble the paper compares blending with: trained models' posteriors averaged
(``evaluate_ensemble.py``), also usable as a teacher."""

from typing import Sequence

import torch
from torch import nn


class PosteriorAverage(nn.Module):
    """A simple ensemble: the average of its members' per-frame posteriors, as log-probabilities
    (what the paper compares blending with). Members take unnormalised features and each
    utterance's number of frames, as :class:`blend_modules.training.teacher.Teacher` does."""

    def __init__(self, members: Sequence[nn.Module]):
        super().__init__()
        self.members = nn.ModuleList(members)

    def forward(
        self, features: torch.Tensor, lengths: torch.Tensor, mask: torch.Tensor = None
    ) -> torch.Tensor:
        """``[batch, frames, labels]`` log of the mean of the members' posteriors (``mask``:
        the SpecAugment masks each member applies to its normalised features)."""
        inputs = (features, lengths) if mask is None else (features, lengths, mask)
        log_posteriors = torch.stack(
            [torch.log_softmax(member(*inputs), dim=-1) for member in self.members]
        )
        return torch.logsumexp(log_posteriors, dim=0) - torch.log(
            torch.tensor(float(len(self.members)))
        )

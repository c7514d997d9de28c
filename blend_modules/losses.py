"""The blending loss: ``λ · CE(student, hard labels) + (1-λ) · CE(student, teacher soft labels)``.

The teacher's distribution (at temperature T) may be cut to its top-k labels and renormalised;
the soft term is then scaled by T² so its gradients keep their size as T changes (Hinton et al.).
"""

from typing import NamedTuple, Tuple

import torch
import torch.nn.functional as F

from blend_modules.frames import frame_mask


class BlendLoss(NamedTuple):
    """The blended loss and its two terms, each a masked mean over real (non-padding) frames."""

    total: torch.Tensor
    hard: torch.Tensor
    soft: torch.Tensor


TEACHER_MODES = ("online", "offline")


def check_blend_options(
    hard_weight: float, top_k: int, num_labels: int, temperature: float, teacher_mode: str
):
    """Raise ``ValueError`` naming the YAML key for λ outside [0, 1], k outside [1, labels],
    T <= 0 or an unknown teacher mode."""
    if not 0.0 <= hard_weight <= 1.0:
        raise ValueError(f"hard_weight (λ) must be in [0, 1], got {hard_weight}.")
    if not 1 <= top_k <= num_labels:
        raise ValueError(f"top_k must be in [1, num_labels={num_labels}], got {top_k}.")
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}.")
    if teacher_mode not in TEACHER_MODES:
        raise ValueError(f"teacher_mode must be one of {TEACHER_MODES}, got {teacher_mode!r}.")


def teacher_topk(
    teacher_logits: torch.Tensor, top_k: int, temperature: float = 1.0
) -> Tuple[torch.Tensor, torch.Tensor]:
    """The teacher's ``top_k`` most likely labels per frame and their renormalised probabilities.

    Returns ``(teacher_topk_ids, teacher_topk_probs)``, both ``[batch, frames, top_k]``.
    """
    probs = torch.softmax(teacher_logits.float() / temperature, dim=-1)
    topk_probs, topk_ids = probs.topk(top_k, dim=-1)
    return topk_ids, topk_probs / topk_probs.sum(dim=-1, keepdim=True)


def blend_loss(
    student_logits: torch.Tensor,
    hard_labels: torch.Tensor,
    lengths: torch.Tensor,
    teacher_topk_ids: torch.Tensor = None,
    teacher_topk_probs: torch.Tensor = None,
    hard_weight: float = 1.0,
    temperature: float = 1.0,
) -> BlendLoss:
    """Blend frame cross-entropy to hard labels with cross-entropy to the teacher's top-k labels.

    Arguments
    ---------
    student_logits : torch.Tensor
        ``[batch, frames, labels]`` unnormalised student outputs.
    hard_labels : torch.Tensor
        ``[batch, frames]`` label ids (padding values are ignored).
    lengths : torch.Tensor
        ``[batch]`` number of real frames of each utterance.
    teacher_topk_ids, teacher_topk_probs : torch.Tensor
        ``[batch, frames, k]`` from :func:`teacher_topk` (or the offline store); may be None
        when ``hard_weight`` is 1.
    hard_weight : float
        λ, the weight of the hard-label term.
    temperature : float
        T, applied to the student's soft-term logits (the teacher's were taken at T already).
    """
    mask = frame_mask(lengths, student_logits.shape[1]).float()
    n_frames = mask.sum().clamp(min=1.0)
    log_probs = torch.log_softmax(student_logits.float(), dim=-1)
    hard_ce = F.nll_loss(
        log_probs.transpose(1, 2), hard_labels.clamp(min=0), reduction="none"
    )
    hard = (hard_ce * mask).sum() / n_frames
    if hard_weight == 1.0 and teacher_topk_ids is None:
        return BlendLoss(hard, hard, torch.zeros_like(hard))
    if teacher_topk_ids is None or teacher_topk_probs is None:
        raise ValueError("hard_weight < 1 needs teacher_topk_ids and teacher_topk_probs.")

    soft_log_probs = torch.log_softmax(student_logits.float() / temperature, dim=-1)
    soft_ce = -(soft_log_probs.gather(-1, teacher_topk_ids.long()) * teacher_topk_probs).sum(-1)
    soft = temperature**2 * (soft_ce * mask).sum() / n_frames
    return BlendLoss(hard_weight * hard + (1.0 - hard_weight) * soft, hard, soft)


def teacher_confidence(
    teacher_logits: torch.Tensor, lengths: torch.Tensor
) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Sums over real frames of the teacher's top-1 probability and entropy (nats), and the
    frame count, so callers can average over a whole dataset."""
    mask = frame_mask(lengths, teacher_logits.shape[1])
    log_probs = torch.log_softmax(teacher_logits.float(), dim=-1)[mask]
    probs = log_probs.exp()
    entropy = -(probs * log_probs).sum(-1)
    return probs.max(-1).values.sum(), entropy.sum(), mask.sum()

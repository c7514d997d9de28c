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
    hard_weight: float,
    top_k: int,
    num_labels: int,
    temperature: float,
    teacher_mode: str,
    store_top_k: int = None,
):
    """Raise ``ValueError`` naming the YAML key for λ outside [0, 1], k not an integer in
    [1, labels], T not a number > 0, an unknown teacher mode, or (offline) a k above the
    ``store_top_k`` labels per frame the teacher store keeps."""
    if not _is_number(hard_weight) or not 0.0 <= hard_weight <= 1.0:
        raise ValueError(f"hard_weight (λ) must be a number in [0, 1], got {hard_weight!r}.")
    if not _is_integer(top_k) or not 1 <= top_k <= num_labels:
        raise ValueError(
            f"top_k must be an integer in [1, num_labels={num_labels}], got {top_k!r}."
        )
    if not _is_number(temperature) or not temperature > 0:
        raise ValueError(f"temperature must be a number > 0, got {temperature!r}.")
    if teacher_mode not in TEACHER_MODES:
        raise ValueError(f"teacher_mode must be one of {TEACHER_MODES}, got {teacher_mode!r}.")
    if teacher_mode == "offline" and not (_is_integer(store_top_k) and top_k <= store_top_k):
        raise ValueError(
            f"top_k {top_k} exceeds teacher_store_top_k {store_top_k}, the labels per frame the "
            "teacher store keeps (an integer >= top_k)."
        )


def _is_integer(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def teacher_topk(teacher_logits: torch.Tensor, top_k: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """The teacher's ``top_k`` most likely labels per frame, most likely first, and their
    log-probabilities at T = 1 (what the offline store keeps).

    Returns ``(teacher_topk_ids, teacher_topk_log_probs)``, both ``[batch, frames, top_k]``.
    """
    log_probs = torch.log_softmax(teacher_logits.float(), dim=-1)
    topk_log_probs, topk_ids = log_probs.topk(top_k, dim=-1)
    return topk_ids, topk_log_probs


def soft_targets(teacher_topk_log_probs: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """The teacher's top-k distribution at ``temperature``, renormalised over the k labels.

    Softmax at T, cut to the top k and renormalised, equals the softmax of the top-k logits (or
    log-probabilities at T = 1, which differ from them by a constant per frame) divided by T:
    so one store of top-k_max log-probabilities serves every k <= k_max and every T.
    """
    return torch.softmax(teacher_topk_log_probs.float() / temperature, dim=-1)


def masked_mean(values: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Mean of ``[batch, frames]`` values over real frames (padding ignored)."""
    mask = frame_mask(lengths, values.shape[1]).float()
    return (values * mask).sum() / mask.sum().clamp(min=1.0)


def frame_cross_entropy(
    logits: torch.Tensor, labels: torch.Tensor, lengths: torch.Tensor
) -> torch.Tensor:
    """Cross-entropy of ``[batch, frames, labels]`` logits to ``[batch, frames]`` label ids,
    a mean over real frames (padding values may be anything, even invalid ids)."""
    log_probs = torch.log_softmax(logits.float(), dim=-1)
    cross_entropy = F.nll_loss(log_probs.transpose(1, 2), labels.clamp(min=0), reduction="none")
    return masked_mean(cross_entropy, lengths)


def soft_cross_entropy(
    logits: torch.Tensor,
    lengths: torch.Tensor,
    teacher_topk_ids: torch.Tensor,
    teacher_topk_probs: torch.Tensor,
    temperature: float = 1.0,
) -> torch.Tensor:
    """``T² · CE(softmax(logits / T), teacher top-k)``, a mean over real frames."""
    log_probs = torch.log_softmax(logits.float() / temperature, dim=-1)
    cross_entropy = -(log_probs.gather(-1, teacher_topk_ids.long()) * teacher_topk_probs).sum(-1)
    return temperature**2 * masked_mean(cross_entropy, lengths)


def blend_loss(
    hard: torch.Tensor,
    student_logits: torch.Tensor,
    lengths: torch.Tensor,
    teacher_topk_ids: torch.Tensor = None,
    teacher_topk_probs: torch.Tensor = None,
    hard_weight: float = 1.0,
    temperature: float = 1.0,
) -> BlendLoss:
    """Blend a hard-target loss with cross-entropy to the teacher's top-k labels.

    Arguments
    ---------
    hard : torch.Tensor
        The hard-target loss of the batch (frame cross-entropy, or CTC).
    student_logits : torch.Tensor
        ``[batch, frames, labels]`` unnormalised student outputs.
    lengths : torch.Tensor
        ``[batch]`` number of real frames of each utterance.
    teacher_topk_ids, teacher_topk_probs : torch.Tensor
        ``[batch, frames, k]`` label ids (from :func:`teacher_topk` or the offline store) and
        their probabilities at T (:func:`soft_targets`); may be None when ``hard_weight`` is 1.
    hard_weight : float
        λ, the weight of the hard-target term.
    temperature : float
        T, applied to the student's soft-term logits (the teacher's were taken at T already).
    """
    if hard_weight == 1.0 and teacher_topk_ids is None:
        return BlendLoss(hard, hard, torch.zeros_like(hard))
    if teacher_topk_ids is None or teacher_topk_probs is None:
        raise ValueError("hard_weight < 1 needs teacher_topk_ids and teacher_topk_probs.")
    if teacher_topk_ids.shape[:2] != student_logits.shape[:2]:
        raise ValueError(
            f"Teacher posteriors are {tuple(teacher_topk_ids.shape[:2])} (batch, frames), the "
            f"student's {tuple(student_logits.shape[:2])}: teacher and student must emit one "
            "output per feature frame (a model that subsamples time cannot be blended here)."
        )
    soft = soft_cross_entropy(
        student_logits, lengths, teacher_topk_ids, teacher_topk_probs, temperature
    )
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

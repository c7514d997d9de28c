"""The blending loss: ``λ · CE(student, hard labels) + (1-λ) · CE(student, teacher soft labels)``.

The teacher's distribution (at temperature T) may be cut to its top-k labels and renormalised;
the soft term is then scaled by T² so its gradients keep their size as T changes (Hinton et al.).

The soft term (``soft_loss``) is the paper's frame by frame cross-entropy (``frames``), or, for
CTC targets, whose posteriors are spikes among blanks: the same on the frames where the
teacher's top label is not blank (``nonblank_frames``), or CTC against the teacher's greedy
best path (``ctc_best_path``, SpeechBrain's ``ctc_loss_kd``), which leaves the timing of the
spikes to the student.
"""

from typing import NamedTuple, Optional, Tuple

import torch
import torch.nn.functional as F
from speechbrain.nnet.losses import ctc_loss_kd

from blend_modules.data.frames import frame_mask, relative_lengths


class BlendLoss(NamedTuple):
    """The blended loss and its two terms, each a masked mean over real (non-padding) frames."""

    total: torch.Tensor
    hard: torch.Tensor
    soft: torch.Tensor


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


def masked_mean(
    values: torch.Tensor, lengths: torch.Tensor, frames: torch.Tensor = None
) -> torch.Tensor:
    """Mean of ``[batch, frames]`` values over real frames (padding ignored), and of those only
    the ``frames`` that are True, if given."""
    mask = frame_mask(lengths, values.shape[1])
    if frames is not None:
        mask = mask & frames
    mask = mask.float()
    return (values * mask).sum() / mask.sum().clamp(min=1.0)


def frame_cross_entropy(
    logits: torch.Tensor, labels: torch.Tensor, lengths: torch.Tensor
) -> torch.Tensor:
    """Cross-entropy of ``[batch, frames, labels]`` logits to ``[batch, frames]`` label ids,
    a mean over real frames with a label (padding values may be anything, even invalid ids;
    a negative id marks a frame without target, e.g. of an utterance the aligner failed on)."""
    log_probs = torch.log_softmax(logits.float(), dim=-1)
    cross_entropy = F.nll_loss(log_probs.transpose(1, 2), labels.clamp(min=0), reduction="none")
    return masked_mean(cross_entropy, lengths, labels >= 0)


def soft_cross_entropy(
    logits: torch.Tensor,
    lengths: torch.Tensor,
    teacher_topk_ids: torch.Tensor,
    teacher_topk_probs: torch.Tensor,
    temperature: float = 1.0,
    frames: torch.Tensor = None,
) -> torch.Tensor:
    """``T² · CE(softmax(logits / T), teacher top-k)``, a mean over real frames (only the
    ``frames`` that are True, if given)."""
    log_probs = torch.log_softmax(logits.float() / temperature, dim=-1)
    cross_entropy = -(log_probs.gather(-1, teacher_topk_ids.long()) * teacher_topk_probs).sum(-1)
    return temperature**2 * masked_mean(cross_entropy, lengths, frames)


def teacher_best_path_ctc(
    logits: torch.Tensor, lengths: torch.Tensor, teacher_top1_ids: torch.Tensor, blank_index: int
) -> torch.Tensor:
    """CTC of the student's ``[batch, frames, units]`` logits against the teacher's greedy best
    path (its top unit per frame, repeats and blanks removed): SpeechBrain's ``ctc_loss_kd``,
    which takes the path from whatever tensor has the teacher's argmax."""
    teacher_argmax = F.one_hot(teacher_top1_ids.long(), logits.shape[-1])
    log_probs = torch.log_softmax(logits.float(), dim=-1)
    relative = relative_lengths(lengths, logits.shape[1])
    return ctc_loss_kd(log_probs, teacher_argmax, relative, blank_index, logits.device)


def blend_loss(
    hard: torch.Tensor,
    student_logits: torch.Tensor,
    lengths: torch.Tensor,
    teacher_topk_ids: torch.Tensor = None,
    teacher_topk_probs: torch.Tensor = None,
    hard_weight: float = 1.0,
    temperature: float = 1.0,
    soft_loss: str = "frames",
    blank_index: Optional[int] = None,
) -> BlendLoss:
    """Blend a hard-target loss with cross-entropy to the teacher's top-k labels (or, for CTC
    targets, with a ``soft_loss`` that respects blanks: see the module's docstring).

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
    soft_loss : str
        ``frames``, ``nonblank_frames`` or ``ctc_best_path`` (the last two need ``blank_index``).
    blank_index : int
        The CTC blank's output index (CTC targets).
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
    if soft_loss == "ctc_best_path":
        soft = teacher_best_path_ctc(student_logits, lengths, teacher_topk_ids[..., 0], blank_index)
    else:
        # the teacher's top-k come most likely first: [..., 0] is its top label
        nonblank = (
            teacher_topk_ids[..., 0] != blank_index if soft_loss == "nonblank_frames" else None
        )
        soft = soft_cross_entropy(
            student_logits, lengths, teacher_topk_ids, teacher_topk_probs, temperature, nonblank
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

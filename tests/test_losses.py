"""Loss maths of the blend: limits, top-k renormalisation, masking, temperature, gradients."""

import pytest
import torch
import torch.nn.functional as F
from conftest import frame_blend, topk_targets
from speechbrain.nnet.losses import nll_loss_kd

from blend_modules.training.blend_options import check_blend_options
from blend_modules.training.losses import soft_targets, teacher_topk

torch.manual_seed(0)
BATCH, FRAMES, LABELS = 3, 7, 11


@pytest.fixture
def batch():
    student = torch.randn(BATCH, FRAMES, LABELS, requires_grad=True)
    teacher = 3 * torch.randn(BATCH, FRAMES, LABELS)
    labels = torch.randint(0, LABELS, (BATCH, FRAMES))
    lengths = torch.tensor([7, 4, 2])
    return student, teacher, labels, lengths


def masked_mean(values, lengths):
    mask = torch.arange(values.shape[1])[None] < lengths[:, None]
    return values[mask].mean()


def test_hard_weight_one_is_frame_cross_entropy(batch):
    student, teacher, labels, lengths = batch
    ids, probs = topk_targets(teacher, 3)
    loss = frame_blend(student, labels, lengths, ids, probs, hard_weight=1.0)
    ce = F.cross_entropy(student.transpose(1, 2), labels, reduction="none")
    assert torch.allclose(loss.total, masked_mean(ce, lengths))
    assert torch.allclose(loss.total, loss.hard)


def test_hard_weight_zero_full_k_is_soft_cross_entropy(batch):
    student, teacher, labels, lengths = batch
    ids, probs = topk_targets(teacher, LABELS)
    loss = frame_blend(student, labels, lengths, ids, probs, hard_weight=0.0)
    soft_ce = -(teacher.softmax(-1) * student.log_softmax(-1)).sum(-1)
    assert torch.allclose(loss.total, masked_mean(soft_ce, lengths), atol=1e-6)


def test_blend_is_weighted_sum_of_terms(batch):
    student, teacher, labels, lengths = batch
    ids, probs = topk_targets(teacher, 4)
    loss = frame_blend(student, labels, lengths, ids, probs, hard_weight=0.3)
    assert torch.allclose(loss.total, 0.3 * loss.hard + 0.7 * loss.soft)


def test_topk_keeps_largest_and_renormalises(batch):
    teacher = batch[1]
    ids, probs = topk_targets(teacher, 3)
    full = teacher.softmax(-1)
    assert torch.equal(ids, full.topk(3, -1).indices)
    assert torch.allclose(probs.sum(-1), torch.ones(BATCH, FRAMES))
    kept = full.gather(-1, ids)
    assert torch.allclose(probs, kept / kept.sum(-1, keepdim=True))


@pytest.mark.parametrize("temperature", [0.5, 1.0, 2.0, 4.0])
def test_stored_topk_at_any_temperature_is_renormalised_topk_of_softmax_at_t(batch, temperature):
    """What one store serves every k and T by: the top-k of softmax(logits / T), renormalised,
    equals softmax(top-k log-probabilities at T = 1 / T), and the top-k ids do not depend on T."""
    teacher = batch[1]
    ids, log_probs = teacher_topk(teacher, LABELS)  # the store: all labels at T = 1
    for k in (1, 3, LABELS):
        at_t = (teacher / temperature).softmax(-1)
        kept, kept_ids = at_t.topk(k, -1)
        assert torch.equal(ids[..., :k], kept_ids)
        expected = kept / kept.sum(-1, keepdim=True)
        assert torch.allclose(soft_targets(log_probs[..., :k], temperature), expected, atol=1e-6)


def test_soft_term_equals_speechbrains_kd_loss(batch):
    """The soft term against SpeechBrain's own ``nll_loss_kd`` on a dense teacher target built
    from the top-k (zeros elsewhere): the same value."""
    student, teacher, labels, lengths = batch
    ids, probs = topk_targets(teacher, 4, 2.0)
    loss = frame_blend(student, labels, lengths, ids, probs, hard_weight=0.0, temperature=2.0)
    dense = torch.zeros_like(teacher).scatter(-1, ids, probs)
    # nll_loss_kd: mean over real frames of -sum(target * input); it takes log-probabilities
    speechbrain_kd = nll_loss_kd((student / 2).log_softmax(-1), dense, lengths / FRAMES)
    assert torch.allclose(loss.soft, 4 * speechbrain_kd, atol=1e-6)


def test_temperature_softens_teacher_and_scales_soft_term(batch):
    student, teacher, labels, lengths = batch
    ids, probs = topk_targets(teacher, LABELS, 2.0)
    assert torch.allclose(probs.gather(-1, ids.argsort(-1)), (teacher / 2).softmax(-1), atol=1e-6)
    loss = frame_blend(student, labels, lengths, ids, probs, hard_weight=0.0, temperature=2.0)
    soft_ce = -((teacher / 2).softmax(-1) * (student / 2).log_softmax(-1)).sum(-1)
    assert torch.allclose(loss.soft, 4 * masked_mean(soft_ce, lengths), atol=1e-5)


def test_padding_is_ignored(batch):
    student, teacher, labels, lengths = batch
    ids, probs = topk_targets(teacher, 5)
    loss = frame_blend(student, labels, lengths, ids, probs, hard_weight=0.5)
    changed_student, changed_labels = student.detach().clone(), labels.clone()
    changed_student[1, 4:] = 100.0
    changed_labels[2, 2:] = -1  # padding values may be anything, even invalid ids
    changed = frame_blend(changed_student, changed_labels, lengths, ids, probs, hard_weight=0.5)
    assert torch.allclose(loss.total, changed.total)


def test_gradients_flow_to_real_frames_only(batch):
    student, teacher, labels, lengths = batch
    ids, probs = topk_targets(teacher, 5)
    frame_blend(student, labels, lengths, ids, probs, hard_weight=0.5).total.backward()
    assert student.grad[0].abs().sum() > 0
    assert student.grad[1, :4].abs().sum() > 0
    assert student.grad[1, 4:].abs().sum() == 0
    assert student.grad[2, 2:].abs().sum() == 0


def test_soft_term_needs_teacher(batch):
    student, _, labels, lengths = batch
    with pytest.raises(ValueError, match="teacher"):
        frame_blend(student, labels, lengths, hard_weight=0.5)


@pytest.mark.parametrize(
    "options, key",
    [
        ((1.5, 5, 31, 1.0, "offline", 31), "hard_weight"),
        ((-0.1, 5, 31, 1.0, "offline", 31), "hard_weight"),
        ((0.5, 0, 31, 1.0, "offline", 31), "top_k"),
        ((0.5, 32, 31, 1.0, "offline", 31), "top_k"),
        ((0.5, 5, 31, 0.0, "offline", 31), "temperature"),
        ((0.5, 5, 31, 1.0, "sometimes", 31), "teacher_mode"),
        ((0.5, 2.5, 31, 1.0, "offline", 31), "top_k must be an integer"),  # passed the range check
        ((0.5, True, 31, 1.0, "offline", 31), "top_k must be an integer"),
        (("0.5", 5, 31, 1.0, "offline", 31), "hard_weight"),
        ((0.5, 5, 31, "2", "offline", 31), "temperature"),
        ((0.5, 9, 31, 1.0, "offline", 8), "top_k 9 exceeds teacher_store_top_k 8"),
        ((0.5, 5, 31, 1.0, "offline", 2.5), "teacher_store_top_k 2.5"),
        ((0.5, 5, 31, 1.0, "offline", 31, "spikes", 0), "soft_loss must be one of"),
        ((0.5, 5, 31, 1.0, "offline", 31, "nonblank_frames", None), "needs CTC targets"),
        ((0.5, 5, 31, 1.0, "offline", 31, "ctc_best_path", None), "needs CTC targets"),
    ],
)
def test_bad_blend_options_are_refused(options, key):
    with pytest.raises(ValueError, match=key):
        check_blend_options(*options)

"""SpecAugment-style masks (hparams/augment/spec_augment.yaml): label-preserving runs of
frames and mel bands zeroed in the normalised features of training batches only; with
consistent_augmentation, the same masks on the online teacher's input."""

import pytest
import speechbrain as sb
import speechocean_corpus  # noqa: F401 - puts the recipe's prepare module on the path
import torch
from conftest import REPO
from speechbrain.dataio.batch import PaddedBatch

from blend_modules.data.hparams import load_hparams_file
from blend_modules.training.brains import StudentBrain, TeacherBrain
from blend_modules.training.teacher import Teacher, load_blending_teacher

RECIPE = REPO / "recipes" / "SpeechOcean762" / "Blend"


class Inputs(torch.nn.Module):
    """A model that returns its input: what the real model would have been given."""

    def forward(self, features, relative_lengths):
        return features


def brain(tmp_path, spec_augment):
    hparams = load_hparams_file(
        RECIPE / "hparams" / "cnn.yaml",
        {"results_folder": str(tmp_path), "spec_augment": spec_augment},
    )
    modules = {"model": Inputs(), "normalize": hparams["normalize"]}
    return TeacherBrain(modules=modules, hparams=hparams, run_opts={"device": "cpu"})


def logits(teacher_brain, features, wav_lens, lengths, stage):
    """What the model is given at ``stage`` (masked if it trains with masks)."""
    mask = teacher_brain.training_mask(features, stage)
    return teacher_brain.model_logits(features.clone(), wav_lens, lengths, mask)


@pytest.mark.parametrize("spec_augment", [True, False])
def test_masks_only_training_features_and_keep_every_frame(tmp_path, spec_augment):
    teacher_brain = brain(tmp_path, spec_augment)
    torch.manual_seed(0)
    features = torch.randn(8, 300, 40) + 5.0  # no normalised value is exactly 0 by chance
    lengths, wav_lens = torch.full((8,), 300), torch.ones(8)
    seen = {}
    for stage in (sb.Stage.TRAIN, sb.Stage.VALID, sb.Stage.TEST):
        seen[stage] = logits(teacher_brain, features, wav_lens, lengths, stage)
        assert seen[stage].shape == features.shape  # every frame keeps its place and target
    for stage in (sb.Stage.VALID, sb.Stage.TEST):
        assert (seen[stage] != 0).all()
    # the number of masks of each kind is drawn per batch (0 to 2): eight training batches
    draws = [seen[sb.Stage.TRAIN]] + [
        logits(teacher_brain, features, wav_lens, lengths, sb.Stage.TRAIN) for _ in range(7)
    ]
    if not spec_augment:
        assert not any((draw == 0).any() for draw in draws)
        return
    frames_seen = bands_seen = False
    for draw in draws:
        zeros = draw == 0
        masked_frames = zeros.all(dim=2)  # a time mask zeroes all 40 bands of a frame
        masked_bands = zeros.all(dim=1)  # a frequency mask zeroes a band over all frames
        assert masked_frames.sum(1).max() <= 2 * 20 and masked_bands.sum(1).max() <= 2 * 8
        assert (zeros == (masked_frames[:, :, None] | masked_bands[:, None, :])).all()
        frames_seen |= bool(masked_frames.any())
        bands_seen |= bool(masked_bands.any())
    assert frames_seen and bands_seen


def test_masks_drawn_on_ones_are_the_masks_themselves(tmp_path):
    """The masks applied to a batch are those drawn on a tensor of ones, multiplied in (the
    same random draws): what lets one draw mask the student's and the teacher's input."""
    masks = brain(tmp_path, True).hparams.augment["masks"]
    features = torch.randn(8, 300, 40) + 5.0
    torch.manual_seed(3)
    masked = masks(features.clone())
    torch.manual_seed(3)
    assert torch.equal(masked, features * masks(torch.ones_like(features)))


class Shifted(torch.nn.Module):
    """A teacher's normalisation that keeps every value away from 0."""

    def forward(self, features, relative_lengths):
        return features - features.min() + 1.0


@pytest.mark.parametrize("consistent", [True, False])
def test_the_online_teacher_sees_the_students_masks_when_consistent(tmp_path, consistent):
    """consistent_augmentation: the online teacher's normalised input is masked exactly where
    the student's is; without it, the teacher labels the clean input."""
    hparams = load_hparams_file(
        RECIPE / "hparams" / "cnn_blend.yaml",
        {
            "results_folder": str(tmp_path),
            "spec_augment": True,
            "teacher_mode": "online",
            "consistent_augmentation": consistent,
        },
    )
    modules = {"model": Inputs(), "normalize": hparams["normalize"]}
    teacher = Teacher(Shifted(), Inputs(), hparams["features"], "a checkpoint")
    student = StudentBrain(
        modules=modules, hparams=hparams, run_opts={"device": "cpu"}, teacher=teacher
    )
    torch.manual_seed(0)
    batch = PaddedBatch([{"id": f"u{i}", "sig": torch.randn(16000 * 3)} for i in range(8)])
    student_input, teacher_input = student.compute_forward(batch, sb.Stage.TRAIN)
    student_zeros = (student_input == 0).all(dim=2)  # the time masks
    assert student_zeros.any()
    if consistent:
        assert torch.equal(student_input == 0, teacher_input == 0)
    else:
        assert not (teacher_input == 0).any()


def test_consistent_augmentation_needs_an_online_teacher_and_masks(tmp_path):
    hparams = load_hparams_file(
        RECIPE / "hparams" / "cnn_blend.yaml",
        {"results_folder": str(tmp_path), "consistent_augmentation": True, "spec_augment": True},
    )
    with pytest.raises(ValueError, match="needs teacher_mode: online and spec_augment: True"):
        load_blending_teacher(hparams)  # the YAML's offline store holds clean-input labels

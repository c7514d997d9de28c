"""SpecAugment-style masks (hparams/augment/spec_augment.yaml): label-preserving runs of
frames and mel bands zeroed in the normalised features of training batches only."""

import pytest
import speechbrain as sb
import speechocean_corpus  # noqa: F401 - puts the recipe's prepare module on the path
import torch
from conftest import REPO

from blend_modules.data.hparams import load_hparams_file
from blend_modules.training.brains import TeacherBrain

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


@pytest.mark.parametrize("spec_augment", [True, False])
def test_masks_only_training_features_and_keep_every_frame(tmp_path, spec_augment):
    teacher_brain = brain(tmp_path, spec_augment)
    torch.manual_seed(0)
    features = torch.randn(8, 300, 40) + 5.0  # no normalised value is exactly 0 by chance
    lengths, wav_lens = torch.full((8,), 300), torch.ones(8)
    seen = {}
    for stage in (sb.Stage.TRAIN, sb.Stage.VALID, sb.Stage.TEST):
        seen[stage] = teacher_brain.model_logits(features.clone(), wav_lens, lengths, stage)
        assert seen[stage].shape == features.shape  # every frame keeps its place and target
    for stage in (sb.Stage.VALID, sb.Stage.TEST):
        assert (seen[stage] != 0).all()
    # the number of masks of each kind is drawn per batch (0 to 2): eight training batches
    draws = [seen[sb.Stage.TRAIN]] + [
        teacher_brain.model_logits(features.clone(), wav_lens, lengths, sb.Stage.TRAIN)
        for _ in range(7)
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

"""Both architectures instantiate from the shared YAML and emit one output per input frame."""

import pytest
import torch
from conftest import REPO
from hyperpyyaml import load_hyperpyyaml

MODELS = sorted((REPO / "hparams" / "models").glob("*.yaml"))


def load_model(path, num_features=40, num_labels=31):
    with open(path) as fin:
        return load_hyperpyyaml(fin, {"num_features": num_features, "num_labels": num_labels})[
            "model"
        ]


@pytest.mark.parametrize("path", MODELS, ids=[p.stem for p in MODELS])
def test_one_output_per_frame(path):
    model = load_model(path).eval()
    for frames in (1, 17, 50):
        assert model(torch.randn(2, frames, 40)).shape == (2, frames, 31)


def test_cnn_context_is_its_receptive_field():
    """Changing one input frame changes exactly the outputs within the declared context."""
    torch.manual_seed(0)
    model = load_model(REPO / "hparams" / "models" / "vgg_small.yaml").eval()
    half_context = (model.context_frames - 1) // 2
    features = torch.randn(1, 120, 40)
    changed = features.clone()
    changed[0, 60] += 5.0
    with torch.no_grad():
        moved = (model(features) - model(changed)).abs().sum(-1)[0] > 0
    assert moved.nonzero().squeeze(1).tolist() == list(range(60 - half_context, 61 + half_context))
    assert half_context == 17


def test_cnn_layer_lists_must_match():
    from blend_modules.models import VGGFrameCNN

    with pytest.raises(ValueError, match="one entry per conv layer"):
        VGGFrameCNN(40, 31, channels=[8, 8], time_dilations=[1], freq_pooling=[1, 1])

"""Swapping the architecture from the command line: a shared model YAML's arguments as an
override, and a replaced ``!include`` refused instead of silently ignored."""

import subprocess
import sys

import pytest
import speechbrain as sb
from conftest import RECIPE, REPO
from hyperpyyaml import load_hyperpyyaml

from blend_modules.data.hparams import load_hparams_file

NARROW = REPO / "hparams" / "models" / "vgg_narrow.yaml"


def recipe_overrides(*argv):
    """The overrides SpeechBrain's argument parser makes of ``--key=value`` arguments."""
    _, _, overrides = sb.parse_arguments(["hparams/cnn.yaml", *argv])
    return overrides


@pytest.mark.parametrize(
    "recipe_yaml, model_yaml",
    [("cnn.yaml", "vgg_narrow.yaml"), ("blstm.yaml", "blstm_large.yaml")],
)
def test_model_override_builds_the_other_yaml_model(recipe_yaml, model_yaml):
    """The FSDD recipe (vgg_small.yaml, blstm_small.yaml) with the override printed for another
    shared YAML builds exactly that YAML's model, for the recipe's features and labels: the
    CNN's arguments sit in its model, the BLSTM's in the YAML's own keys."""
    path = REPO / "hparams" / "models" / model_yaml
    printed = subprocess.run(
        [sys.executable, "-m", "blend_modules.data.hparams", str(path)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    hparams = load_hparams_file(
        RECIPE / "hparams" / recipe_yaml, recipe_overrides(f"--architecture={printed}")
    )
    with open(path) as yaml_file:
        expected = load_hyperpyyaml(yaml_file, {"num_features": 40, "num_labels": 31})["model"]
    model = hparams["model"]
    assert hparams["architecture"]["model"] is model
    assert repr(model) == repr(expected)
    assert [p.shape for p in model.parameters()] == [p.shape for p in expected.parameters()]


def test_an_include_cannot_be_replaced_from_the_command_line():
    """hyperpyyaml would merge the new node's keys into the old !include and build the YAML's
    own model; the override is refused, naming the key."""
    overrides = recipe_overrides(
        f'--architecture=!include:{NARROW} {{num_features: !ref "<features[n_mels]>"}}'
    )
    with pytest.raises(ValueError, match="--architecture: a !include:.* cannot replace"):
        load_hparams_file(RECIPE / "hparams" / "cnn.yaml", overrides)

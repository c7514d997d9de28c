"""Both architectures instantiate from the shared YAML, emit one output per input frame, and
give an utterance the same outputs alone or batched with longer ones."""

import pytest
import torch
from conftest import REPO
from hyperpyyaml import load_hyperpyyaml

from blend_modules.models.ensemble import PosteriorAverage

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


def padded_batch(utterances, extra_frames=0, fill=0.0):
    """Utterances padded (with ``fill``) to the longest plus ``extra_frames``, and their
    relative lengths."""
    frames = max(len(u) for u in utterances) + extra_frames
    batch = torch.full((len(utterances), frames, utterances[0].shape[1]), fill)
    for i, utterance in enumerate(utterances):
        batch[i, : len(utterance)] = utterance
    return batch, torch.tensor([len(u) / frames for u in utterances])


def without_dropout(model):
    """Train mode (batch statistics) with dropout off, so outputs are deterministic."""
    model.train()
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.eval()
    return model


@pytest.mark.parametrize("path", MODELS, ids=[p.stem for p in MODELS])
def test_outputs_do_not_depend_on_batching(path):
    """Eval mode: an utterance alone equals the same utterance padded among longer ones."""
    torch.manual_seed(0)
    model = load_model(path).eval()
    utterances = [torch.randn(frames, 40) for frames in (23, 80, 57)]
    with torch.no_grad():
        batch, lengths = padded_batch(utterances, extra_frames=9, fill=3.0)
        batched = model(batch, lengths)
        for i, utterance in enumerate(utterances):
            alone = model(utterance[None], torch.ones(1))[0]
            assert torch.allclose(batched[i, : len(utterance)], alone, atol=1e-5), (path, i)


@pytest.mark.parametrize("path", MODELS, ids=[p.stem for p in MODELS])
def test_training_statistics_ignore_padding(path):
    """Train mode: outputs and batch-norm running statistics are the same whatever the amount
    and content of the padding."""
    torch.manual_seed(0)
    utterances = [torch.randn(frames, 40) for frames in (31, 60)]
    results = []
    for extra_frames, fill in ((0, 0.0), (25, 7.0)):
        torch.manual_seed(1)  # the same initial weights
        model = without_dropout(load_model(path))
        batch, lengths = padded_batch(utterances, extra_frames, fill)
        outputs = model(batch, lengths)
        buffers = [b.clone() for name, b in model.named_buffers() if "running" in name]
        results.append(([outputs[i, : len(u)] for i, u in enumerate(utterances)], buffers))
    (outputs, buffers), (padded_outputs, padded_buffers) = results
    assert ("vgg" in path.stem) == bool(buffers)
    for a, b in zip(outputs + buffers, padded_outputs + padded_buffers):
        assert torch.allclose(a, b, atol=1e-5)


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
    from blend_modules.models.vgg import VGGFrameCNN

    with pytest.raises(ValueError, match="one entry per conv layer"):
        VGGFrameCNN(40, 31, channels=[8, 8], time_dilations=[1], freq_pooling=[1, 1])


def test_masked_batch_norm_without_padding_is_batch_norm():
    """With every frame real, MaskedBatchNorm2d computes exactly what nn.BatchNorm2d does:
    outputs, input gradients and running statistics."""
    from blend_modules.models.vgg import MaskedBatchNorm2d

    torch.manual_seed(0)
    maps = torch.randn(3, 5, 20, 7, requires_grad=True)
    reference, masked = torch.nn.BatchNorm2d(5), MaskedBatchNorm2d(5)
    with torch.no_grad():
        reference.weight.uniform_()
        reference.bias.uniform_()
        masked.weight.copy_(reference.weight)
        masked.bias.copy_(reference.bias)
    upstream = torch.randn(3, 5, 20, 7)
    outputs = [reference(maps), masked(maps, torch.ones(3, 20, dtype=torch.bool))]
    grads = [torch.autograd.grad((out * upstream).sum(), maps)[0] for out in outputs]
    assert torch.allclose(outputs[0], outputs[1], atol=1e-6)
    assert torch.allclose(grads[0], grads[1], atol=1e-6)
    assert torch.allclose(reference.running_mean, masked.running_mean, atol=1e-6)
    assert torch.allclose(reference.running_var, masked.running_var, atol=1e-6)
    reference.eval(), masked.eval()
    assert torch.allclose(
        reference(maps), masked(maps, torch.ones(3, 20, dtype=torch.bool)), atol=1e-6
    )


@pytest.mark.parametrize("path", [p for p in MODELS if "vgg" in p.stem], ids=lambda p: p.stem)
def test_folded_batch_norm_gives_the_same_outputs(path):
    """Batch norm folded into the convolutions (after training has moved its statistics away
    from 0 and 1): the same outputs on a padded batch, and the trained model untouched."""
    from blend_modules.models.vgg import FoldedBatchNorm, fold_batch_norm

    torch.manual_seed(0)
    model = without_dropout(load_model(path))
    for _ in range(3):  # running statistics and affine parameters away from their initial values
        model(3 * torch.randn(4, 60, 40) + 1, torch.tensor([1.0, 0.8, 0.5, 0.3]))
    with torch.no_grad():
        for norm in model.norms:
            norm.weight.uniform_(0.5, 2)
            norm.bias.uniform_(-1, 1)
    model.eval()
    weights = [conv.weight.clone() for conv in model.convs]
    batch, lengths = padded_batch([torch.randn(n, 40) for n in (70, 33)], extra_frames=5)
    folded = fold_batch_norm(model)
    with torch.no_grad():
        assert torch.allclose(folded(batch, lengths), model(batch, lengths), atol=1e-4)
    assert all(isinstance(norm, FoldedBatchNorm) for norm in folded.norms)
    assert not any(isinstance(norm, FoldedBatchNorm) for norm in model.norms)
    assert all(torch.equal(conv.weight, w) for conv, w in zip(model.convs, weights))


class FrameLinear(torch.nn.Module):
    """A member with the teacher's interface: unnormalised features and frame counts."""

    def __init__(self, seed: int):
        super().__init__()
        torch.manual_seed(seed)
        self.linear = torch.nn.Linear(40, 31)

    def forward(self, features, lengths):
        return self.linear(features)


def test_posterior_average_is_the_mean_of_the_members_posteriors():
    members = [FrameLinear(0), FrameLinear(1)]
    features, lengths = torch.randn(2, 17, 40), torch.tensor([17, 9])
    with torch.no_grad():
        ensemble = PosteriorAverage(members)(features, lengths)
        posteriors = [torch.softmax(member(features, lengths), -1) for member in members]
        alone = PosteriorAverage(members[:1])(features, lengths)
    assert torch.allclose(ensemble.exp(), (posteriors[0] + posteriors[1]) / 2, atol=1e-6)
    assert torch.allclose(ensemble.exp().sum(-1), torch.ones(2, 17), atol=1e-5)
    assert torch.allclose(alone, torch.log_softmax(members[0](features, lengths), -1), atol=1e-6)

"""Streaming CNN inference: chunk by chunk, the same outputs as the whole utterance, each frame
out as soon as the model's look-ahead has arrived."""

import pytest
import soundfile as sf
import torch
from conftest import RECIPE, REPO
from hyperpyyaml import load_hyperpyyaml
from speechbrain.processing.features import InputNormalization

from blend_modules.data.hparams import load_hparams_file
from blend_modules.models.streaming import StreamingCNN, stream_utterance

VGG_MODELS = sorted((REPO / "hparams" / "models").glob("vgg_*.yaml"))


@pytest.fixture(scope="module")
def utterances():
    """Filterbank features of real FSDD recordings (different lengths)."""
    features = load_hparams_file(
        REPO / "hparams" / "features" / "fbank.yaml", {"sample_rate": 8000}
    )
    wavs = sorted((RECIPE / "fsdd" / "recordings").glob("*.wav"))[:4]
    return [
        features["compute_features"](torch.tensor(sf.read(wav, dtype="float32")[0])[None])[0]
        for wav in wavs
    ]


def trained_looking(path, utterances):
    """A model of the YAML in eval mode with batch norm statistics unlike the identity, and a
    global input normalisation fitted on the utterances."""
    torch.manual_seed(0)
    with open(path) as fin:
        model = load_hyperpyyaml(fin, {"num_features": 40, "num_labels": 31})["model"]
    for norm in model.norms:
        norm.running_mean.uniform_(-0.5, 0.5)
        norm.running_var.uniform_(0.5, 2.0)
    normalize = InputNormalization(norm_type="global")
    for features in utterances:
        normalize(features[None], torch.ones(1))  # training mode: accumulates statistics
    return model.eval(), normalize.eval()


@pytest.mark.parametrize("path", VGG_MODELS, ids=[p.stem for p in VGG_MODELS])
def test_streaming_equals_the_whole_utterance_for_every_chunk_size(path, utterances):
    model, normalize = trained_looking(path, utterances)
    stream = StreamingCNN(model, normalize)
    for features in utterances:
        with torch.no_grad():
            whole = model(normalize(features[None], torch.ones(1)))[0]
        for chunk_frames in (1, 3, 10, 32, 100, len(features) + 5):
            streamed = stream_utterance(stream, features, chunk_frames)
            assert streamed.shape == whole.shape
            assert (streamed - whole).abs().max() < 1e-5, (path.stem, chunk_frames)


def test_each_frame_waits_only_for_the_lookahead(utterances):
    model, normalize = trained_looking(REPO / "hparams" / "models" / "vgg_medium.yaml", utterances)
    stream = StreamingCNN(model, normalize)
    lookahead = stream.lookahead_frames
    assert lookahead == (model.context_frames - 1) // 2 == 15  # the receptive field's right half
    assert stream.latency_frames(10) == 25
    features, emitted = utterances[0], 0
    for arrived in range(1, len(features) + 1):
        emitted += len(stream.accept(features[arrived - 1 : arrived]))
        assert emitted == max(arrived - lookahead, 0)
    assert emitted + len(stream.finish()) == len(features)


def test_finish_without_an_utterance_is_refused(utterances):
    model, _ = trained_looking(VGG_MODELS[0], utterances)
    with pytest.raises(RuntimeError, match="before any accept"):
        StreamingCNN(model).finish()


def test_empty_chunks_first_or_midstream_change_nothing(utterances):
    """A chunk of no frames, even the first of an utterance, returns no outputs and leaves the
    stream as it was (issue 24: an empty first chunk crashed in the convolution)."""
    model, normalize = trained_looking(VGG_MODELS[0], utterances)
    stream, features = StreamingCNN(model, normalize), utterances[0]
    with torch.no_grad():
        whole = model(normalize(features[None], torch.ones(1)))[0]
    empty = features[:0]
    outputs = [stream.accept(empty)]
    outputs += [stream.accept(chunk) for chunk in features.split(7)]
    outputs += [stream.accept(empty), stream.finish()]
    assert outputs[0].shape == (0, whole.shape[1])
    assert (torch.cat(outputs) - whole).abs().max() < 1e-5


def test_normalisation_that_changes_with_each_chunk_is_refused(utterances):
    """Issue 24: each chunk is normalised on its own, exact only for global statistics; a
    per-sentence normalisation streamed silently to other outputs than the whole utterance."""
    model, _ = trained_looking(VGG_MODELS[0], utterances)
    for norm_type in ("sentence", "batch"):
        with pytest.raises(ValueError, match=f"norm_type '{norm_type}'.*only 'global'"):
            StreamingCNN(model, InputNormalization(norm_type=norm_type))

"""Export to TorchScript and ONNX: onnxruntime and the TorchScript module give PyTorch's
log-posteriors on real features, any batch and length; a faithless export leaves nothing."""

import json

import numpy as np
import onnxruntime
import pytest
import soundfile as sf
import torch
from conftest import RECIPE, REPO, run_recipe, teacher_overrides
from hyperpyyaml import load_hyperpyyaml
from speechbrain.processing.features import InputNormalization

from blend_modules.data.hparams import load_hparams_file
from blend_modules.deploy.onnx_export import OnnxEncoder, export_model
from blend_modules.training.teacher import Teacher


def real_batch(num_wavs: int = 3):
    """Unnormalised filterbanks of FSDD recordings as a padded batch, and their frame counts."""
    features = load_hparams_file(
        REPO / "hparams" / "features" / "fbank.yaml", {"sample_rate": 8000}
    )
    wavs = sorted((RECIPE / "fsdd" / "recordings").glob("*.wav"))[5 : 5 + num_wavs]
    utterances = [
        features["compute_features"](torch.tensor(sf.read(wav, dtype="float32")[0])[None])[0]
        for wav in wavs
    ]
    lengths = torch.tensor([len(u) for u in utterances])
    return torch.nn.utils.rnn.pad_sequence(utterances, batch_first=True), lengths


def onnx_log_posteriors(path, features, lengths) -> np.ndarray:
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {"features": features.numpy(), "lengths": lengths.numpy()})[0]


def assert_close_on_real_frames(output, expected, lengths, tolerance=1e-4):
    real = np.arange(expected.shape[1])[None, :] < lengths.numpy()[:, None]
    assert output.shape == expected.shape
    assert np.abs(output - expected)[real].max() < tolerance


def test_trained_teacher_exports_through_its_recipe(trained_teacher, tmp_path):
    result = run_recipe("export_model.py", "blstm.yaml", teacher_overrides(trained_teacher.parent))
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((trained_teacher / "summary.json").read_text())
    with open(trained_teacher / "hyperparams.yaml") as fin:
        hparams = load_hyperpyyaml(fin)
    hparams["checkpointer"].recover_if_possible(min_key="frame_error")
    model, normalize = hparams["model"].eval(), hparams["normalize"].eval()
    features, lengths = real_batch()
    with torch.no_grad():
        relative = lengths / features.shape[1]
        expected = torch.log_softmax(model(normalize(features, relative), relative), -1).numpy()
    export = trained_teacher / "export"
    assert_close_on_real_frames(
        onnx_log_posteriors(export / "model.onnx", features, lengths), expected, lengths
    )
    torchscript = torch.jit.load(str(export / "model.torchscript.pt"))
    with torch.no_grad():
        scripted = torchscript(features, lengths).numpy()
    assert_close_on_real_frames(scripted, expected, lengths)
    assert summary["parameters"] > 0  # the run the export came from is untouched

    # the run's HybridASR on the ONNX graph transcribes as on PyTorch
    from blend_modules.deploy.inference import HybridASR

    inference = trained_teacher / "inference"
    wavs = sorted((RECIPE / "fsdd" / "recordings").glob("*.wav"))[:3]
    on_torch = HybridASR.from_hparams(source=str(inference), savedir=str(tmp_path / "torch"))
    on_onnx = HybridASR.from_hparams(
        source=str(inference), hparams_file="hyperparams_onnx.yaml", savedir=str(tmp_path / "onnx")
    )
    assert isinstance(on_onnx.mods.encoder, OnnxEncoder)
    for wav in wavs:
        assert on_onnx.transcribe_file(str(wav)) == on_torch.transcribe_file(str(wav))


def fitted_cnn(yaml: str, features, lengths) -> Teacher:
    """A CNN of the YAML with batch-norm statistics unlike the identity, behind a global input
    normalisation fitted on the features, in eval mode."""
    torch.manual_seed(0)
    with open(REPO / "hparams" / "models" / f"{yaml}.yaml") as fin:
        cnn = load_hyperpyyaml(fin, {"num_features": 40, "num_labels": 31})["model"]
    for norm in cnn.norms:
        norm.running_mean.uniform_(-0.5, 0.5)
        norm.running_var.uniform_(0.5, 2.0)
    normalize = InputNormalization(norm_type="global")
    normalize(features, lengths / features.shape[1])  # training mode: accumulates statistics
    return Teacher(normalize.eval(), cnn.eval(), {"sample_rate": 8000}, "test").eval()


@pytest.mark.parametrize("yaml", ["vgg_small", "vgg_medium"])
def test_cnn_exports_and_runs_in_onnxruntime(yaml, tmp_path):
    features, lengths = real_batch()
    model = fitted_cnn(yaml, features, lengths)
    paths = export_model(model, tmp_path, num_features=40)
    with torch.no_grad():
        expected = torch.log_softmax(model(features, lengths), -1).numpy()
    onnx = onnx_log_posteriors(paths["onnx"], features, lengths)
    assert_close_on_real_frames(onnx, expected, lengths)
    # one utterance alone gives the outputs it has in the batch
    alone = onnx_log_posteriors(paths["onnx"], features[1:2, : lengths[1]], lengths[1:2])
    assert np.abs(alone[0] - expected[1, : lengths[1]]).max() < 1e-4


def test_an_export_that_differs_from_pytorch_is_refused_and_removed(tmp_path):
    model = fitted_cnn("vgg_small", *real_batch())
    with pytest.raises(ValueError, match="not a faithful export"):
        export_model(model, tmp_path, num_features=40, tolerance=-1.0)
    assert list(tmp_path.iterdir()) == []

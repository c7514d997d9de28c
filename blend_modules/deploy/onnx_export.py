"""A trained model for deployment without SpeechBrain or this project: TorchScript and ONNX.

The exported graph is the model the recipes run on filterbank features: the run's input
normalisation and network, then a log-softmax. It takes ``features`` ``[batch, frames,
n_mels]`` (unnormalised, as the recipe's ``compute_features`` gives them) and ``lengths``
``[batch]`` (each utterance's real frames, int64), and returns ``log_posteriors`` ``[batch,
frames, labels]``; batch and frames are dynamic, and an utterance's outputs do not depend on
its batch-mates (:mod:`blend_modules.models.vgg`). Hybrid decoding subtracts the label log-priors
from them, CTC decoding reads them as they are.

ONNX goes through PyTorch's TorchScript-based exporter (``dynamo=False``): the torch.export
one gave the BLSTM's output a frame count fixed at the example's. Both TorchScript and that
exporter are deprecated in PyTorch 2.14 (they warn) and still work; measured here with 2.14.1. Every
export is checked before it is kept: on inputs of another batch size and length than the example,
onnxruntime's and the TorchScript module's outputs must match PyTorch's within ``tolerance`` on real
frames.
"""

import logging
from pathlib import Path
from typing import Dict

import numpy as np
import torch
from speechbrain.utils.checkpoints import (
    mark_as_loader,
    mark_as_saver,
    mark_as_transfer,
    register_checkpoint_hooks,
)

from blend_modules.data.frames import num_frames
from blend_modules.deploy.inference import add_onnx_encoder
from blend_modules.training.teacher import load_teacher

logger = logging.getLogger(__name__)

INPUT_NAMES = ["features", "lengths"]


OUTPUT_NAMES = ["log_posteriors"]


TORCHSCRIPT_FILE, ONNX_FILE = "model.torchscript.pt", "model.onnx"


class LogPosteriors(torch.nn.Module):
    """``model(features, lengths)`` logits (e.g. a :class:`blend_modules.training.teacher.Teacher`:
    normalisation and network) as per-frame log-probabilities."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, features: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """``[batch, frames, n_mels]`` features and frame counts to log-probabilities."""
        return torch.log_softmax(self.model(features, lengths), dim=-1)


def example_inputs(num_features: int, batch: int, frames: int, seed: int = 0):
    """Random features and frame counts (the first utterance full length, the others shorter)."""
    generator = torch.Generator().manual_seed(seed)
    features = torch.randn(batch, frames, num_features, generator=generator)
    lengths = torch.randint(1, frames + 1, (batch,), generator=generator)
    lengths[0] = frames
    return features, lengths


def export_model(
    model: torch.nn.Module, folder, num_features: int, tolerance: float = 1e-4
) -> Dict[str, Path]:
    """Write ``model.torchscript.pt`` and ``model.onnx`` of ``LogPosteriors(model)`` into
    ``folder``, each checked against PyTorch (see the module docstring) before it takes its
    name: ``ValueError`` if one differs, and nothing of a failed export is left. Returns the
    files by format."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    exported = LogPosteriors(model).eval()
    final = {"torchscript": folder / TORCHSCRIPT_FILE, "onnx": folder / ONNX_FILE}
    partial = {kind: path.with_name(path.name + ".partial") for kind, path in final.items()}
    try:
        write_exports(exported, partial, num_features)
        check_exports(exported, partial, num_features, tolerance)
        for kind, path in partial.items():
            path.replace(final[kind])
    finally:
        for path in partial.values():
            path.unlink(missing_ok=True)
    return final


def write_exports(exported: torch.nn.Module, paths: Dict[str, Path], num_features: int) -> None:
    """Trace ``exported`` to TorchScript and export it to ONNX on an example batch."""
    example = example_inputs(num_features, batch=2, frames=50)
    with torch.no_grad():
        torch.jit.trace(exported, example).save(str(paths["torchscript"]))
        torch.onnx.export(
            exported,
            example,
            str(paths["onnx"]),
            dynamo=False,
            input_names=INPUT_NAMES,
            output_names=OUTPUT_NAMES,
            dynamic_axes={"features": {0: "batch", 1: "frames"}, "lengths": {0: "batch"}},
        )


def check_exports(
    exported: torch.nn.Module, paths: Dict[str, Path], num_features: int, tolerance: float
) -> None:
    """``ValueError`` naming the file if the TorchScript module's or onnxruntime's outputs differ
    from ``exported``'s by more than ``tolerance`` on the real frames of a batch of another size
    and length than the example's."""
    import onnxruntime

    features, lengths = example_inputs(num_features, batch=3, frames=137, seed=1)
    session = onnxruntime.InferenceSession(str(paths["onnx"]), providers=["CPUExecutionProvider"])
    with torch.no_grad():
        expected = exported(features, lengths).numpy()
        outputs = {"torchscript": torch.jit.load(str(paths["torchscript"]))(features, lengths)}
    outputs["torchscript"] = outputs["torchscript"].numpy()
    inputs = {"features": features.numpy(), "lengths": lengths.numpy()}
    outputs["onnx"] = session.run(OUTPUT_NAMES, inputs)[0]
    real = np.arange(features.shape[1])[None, :] < lengths.numpy()[:, None]  # padding: anything
    for kind, output in outputs.items():
        if output.shape != expected.shape:
            raise ValueError(f"{paths[kind]}: outputs {output.shape}, PyTorch's {expected.shape}.")
        difference = float(np.abs(output - expected)[real].max())
        if difference > tolerance:
            raise ValueError(
                f"{paths[kind]}: outputs differ from PyTorch's by up to {difference:.2e} "
                f"(tolerance {tolerance:g}); not a faithful export."
            )
        logger.info("%s export matches PyTorch within %.2e.", kind, difference)


@register_checkpoint_hooks
class OnnxEncoder(torch.nn.Module):
    """Waveforms to per-frame log-probabilities through an exported graph in onnxruntime: the
    recipe's features, then the graph (normalisation, network, log-softmax). The ``encoder`` of
    an inference folder's ``hyperparams_onnx.yaml``
    (:func:`blend_modules.deploy.inference.add_onnx_encoder`); its graph is the folder's
    ``acoustic_model.ckpt``, which SpeechBrain's ``Pretrainer`` hands to :meth:`_load`."""

    def __init__(self, compute_features: torch.nn.Module, hop_samples: int):
        super().__init__()
        self.compute_features, self.hop_samples = compute_features, hop_samples
        self.session = None

    def forward(self, wavs: torch.Tensor, wav_lens: torch.Tensor) -> torch.Tensor:
        """``[batch, samples]`` waveforms and relative lengths to ``[batch, frames, labels]``."""
        if self.session is None:
            raise RuntimeError("No ONNX graph loaded: load the inference folder with from_hparams.")
        features = self.compute_features(wavs)
        num_samples = torch.round(wav_lens * wavs.shape[1]).long()
        inputs = {
            "features": features.cpu().numpy(),
            "lengths": num_frames(num_samples, self.hop_samples).cpu().numpy(),
        }
        return torch.from_numpy(self.session.run(OUTPUT_NAMES, inputs)[0]).to(wavs.device)

    @mark_as_saver
    def _save(self, path) -> None:
        raise NotImplementedError(
            "An OnnxEncoder's graph is written by blend_modules.deploy.onnx_export."
        )

    @mark_as_loader
    def _load(self, path, end_of_epoch: bool = False) -> None:
        self._transfer(path)

    @mark_as_transfer  # the Pretrainer's hook (before torch's, which would read it as weights)
    def _transfer(self, path) -> None:
        import onnxruntime

        self.session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def export_run(hparams: Dict) -> Dict[str, Path]:
    """Export a trained run (its best checkpoint, with its input normalisation; ``hparams`` as
    it trained) to ``output_folder/export`` with :func:`export_model`; if the run has an
    inference folder, its interface (``HybridASR`` or ``EncoderASR``) gets
    ``hyperparams_onnx.yaml`` to run on the ONNX graph."""
    hparams["targets"].prepare_outputs()  # CTC: the tokenizer, whose units are the outputs
    model = load_teacher(hparams["output_folder"], hparams["features"], hparams["targets"])
    folder = Path(hparams["output_folder"]) / "export"
    paths = export_model(model, folder, hparams["features"]["n_mels"])
    inference_folder = Path(hparams.get("inference_folder", ""))
    if (inference_folder / "hyperparams.yaml").is_file():  # its interface, on the ONNX graph
        paths["inference"] = add_onnx_encoder(
            inference_folder, paths["onnx"], hparams["features"], hparams["targets"]
        )
    return paths

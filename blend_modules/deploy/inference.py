"""A trained model as a folder that transcribes audio: features -> model -> decoder -> words.

CTC targets: SpeechBrain's own ``EncoderASR`` loads it (greedy CTC decoding)::

    from speechbrain.inference.ASR import EncoderASR
    asr = EncoderASR.from_hparams(source="results/cnn_ctc/1986/inference", savedir="...")
    asr.transcribe_file("utterance.wav")

Frame targets with a decoder (hybrid): :class:`HybridASR`, the same interface, decodes the
model's pseudo-log-likelihoods with the recipe's WFST graph at the acoustic scale chosen on
valid::

    from blend_modules.deploy.inference import HybridASR
    asr = HybridASR.from_hparams(source="results/cnn/1986/inference", savedir="...")
    asr.transcribe_file("utterance.wav")

The folder holds ``hyperparams.yaml`` (the run's features and architecture, as resolved when
it trained, plus the encoder, the decoding pieces and a pretrainer), ``model.ckpt``,
``normalizer.ckpt`` and ``tokenizer.ckpt`` (CTC: the SentencePiece model) or ``decoder.ckpt``
(hybrid: graph, words, label priors, acoustic scale).
"""

import io
import shutil
from pathlib import Path
from typing import Dict, List, Optional

import torch
from ruamel.yaml import YAML
from speechbrain.inference.interfaces import Pretrained
from torch import nn

from blend_modules.data.frames import hop_samples, num_frames, relative_lengths


class FeatureEncoder(nn.Module):
    """Waveforms to per-frame log-probabilities: features, normalisation, model.

    The ``encoder`` of the inference folder that ``speechbrain.inference.ASR.EncoderASR`` loads;
    it applies exactly the training-time front end.
    """

    def __init__(
        self, compute_features: nn.Module, normalize: nn.Module, model: nn.Module, hop_samples: int
    ):
        super().__init__()
        self.compute_features, self.normalize, self.model = compute_features, normalize, model
        self.hop_samples = hop_samples

    def forward(self, wavs: torch.Tensor, wav_lens: torch.Tensor) -> torch.Tensor:
        """``[batch, samples]`` waveforms and relative lengths to ``[batch, frames, labels]``."""
        features = self.normalize(self.compute_features(wavs), wav_lens)
        num_samples = torch.round(wav_lens * wavs.shape[1]).long()
        lengths = relative_lengths(num_frames(num_samples, self.hop_samples), features.shape[1])
        return torch.log_softmax(self.model(features, lengths), dim=-1)


ENCODER_YAML = """
audio_normalizer: !new:speechbrain.dataio.preprocess.AudioNormalizer
    sample_rate: {sample_rate}   # files are resampled to it (the default would be 16 kHz)
encoder: !new:blend_modules.deploy.inference.FeatureEncoder
    compute_features: !ref <features[compute_features]>
    normalize: !ref <normalize>
    model: !ref <architecture[model]>
    hop_samples: {hop}
modules:
    encoder: !ref <encoder>
"""


# the exported graph (normalisation + network + log-softmax, blend_modules.deploy.onnx_export)
# in onnxruntime
ONNX_ENCODER_YAML = """
audio_normalizer: !new:speechbrain.dataio.preprocess.AudioNormalizer
    sample_rate: {sample_rate}   # files are resampled to it (the default would be 16 kHz)
encoder: !new:blend_modules.deploy.onnx_export.OnnxEncoder
    compute_features: !ref <features[compute_features]>
    hop_samples: {hop}
modules:
    encoder: !ref <encoder>
"""


CTC_YAML = """
tokenizer: !new:sentencepiece.SentencePieceProcessor
decoding_function: !name:speechbrain.decoders.ctc_greedy_decode
    blank_id: {blank}
"""


HYBRID_YAML = """
decoder: !new:blend_modules.hybrid.decoder.WordDecoder
"""


TORCH_LOADABLES = {"model": "<architecture[model]>", "normalizer": "<normalize>"}


ONNX_LOADABLES = {"acoustic_model": "<encoder>"}  # acoustic_model.ckpt: the ONNX file


ONNX_HPARAMS_FILE = "hyperparams_onnx.yaml"


def pretrainer_yaml(loadables: Dict[str, str]) -> str:
    """The ``pretrainer`` that loads each ``<name>.ckpt`` of the folder into its object."""
    lines = ["pretrainer: !new:speechbrain.utils.parameter_transfer.Pretrainer", "    loadables:"]
    lines += [f"        {name}: !ref {reference}" for name, reference in loadables.items()]
    return "\n".join(lines) + "\n"


def write_inference_folder(hparams: Dict, checkpoint, folder) -> Optional[Path]:
    """Write ``folder`` from a run's best ``checkpoint``: for ``EncoderASR`` (CTC targets, with
    the tokenizer) or for :class:`HybridASR` (frame targets with a decoder). Frame targets
    without a decoder cannot transcribe: nothing is written, None returned."""
    targets = hparams["targets"]
    decoder = getattr(targets, "decoder", None)
    if decoder is None and not hasattr(targets, "tokenizer_file"):
        return None
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if decoder is not None:
        decoder._save(folder / "decoder.ckpt")
    else:
        shutil.copy(targets.tokenizer_file, folder / "tokenizer.ckpt")
    settings = {
        "sample_rate": hparams["features"]["sample_rate"],
        "hop": hop_samples(hparams["features"]),
    }
    kept = ("features", "normalize", "architecture")
    text = saved_hparams(Path(hparams["output_folder"], "hyperparams.yaml"), kept)
    text += (
        ENCODER_YAML.format(**settings)
        + decoding_yaml(targets)
        + pretrainer_yaml(
            {**TORCH_LOADABLES, decoding_loadable(targets): f"<{decoding_loadable(targets)}>"}
        )
    )
    (folder / "hyperparams.yaml").write_text(text)
    shutil.copy(Path(checkpoint.path, "model.ckpt"), folder / "model.ckpt")
    shutil.copy(Path(checkpoint.path, "normalizer.ckpt"), folder / "normalizer.ckpt")
    return folder


def add_onnx_encoder(folder, onnx_file, features: Dict, targets) -> Path:
    """Let an inference folder's interface run on an exported ONNX graph: writes
    ``acoustic_model.ckpt`` (the ONNX file) and ``hyperparams_onnx.yaml``, for
    ``from_hparams(source=folder, hparams_file="hyperparams_onnx.yaml")``."""
    folder = Path(folder)
    shutil.copy(onnx_file, folder / "acoustic_model.ckpt")
    settings = {"sample_rate": features["sample_rate"], "hop": hop_samples(features)}
    text = saved_hparams(folder / "hyperparams.yaml", ("features",))
    text += (
        ONNX_ENCODER_YAML.format(**settings)
        + decoding_yaml(targets)
        + pretrainer_yaml(
            {**ONNX_LOADABLES, decoding_loadable(targets): f"<{decoding_loadable(targets)}>"}
        )
    )
    (folder / ONNX_HPARAMS_FILE).write_text(text)
    return folder / ONNX_HPARAMS_FILE


def saved_hparams(path: Path, keys) -> str:
    """The ``keys`` of a saved (resolved) hyperparams file, as YAML text."""
    yaml = YAML()
    saved = yaml.load(path)
    text = io.StringIO()
    yaml.dump({key: saved[key] for key in keys}, text)
    return text.getvalue()


def decoding_yaml(targets) -> str:
    """The decoding pieces: the hybrid decoder, or the CTC tokenizer and greedy search."""
    if getattr(targets, "decoder", None) is not None:
        return HYBRID_YAML
    return CTC_YAML.format(blank=targets.blank_index)


def decoding_loadable(targets) -> str:
    """What the pretrainer loads for decoding: ``decoder`` (hybrid) or ``tokenizer`` (CTC)."""
    return "decoder" if getattr(targets, "decoder", None) is not None else "tokenizer"


class HybridASR(Pretrained):
    """Transcribes audio with a frame-target model: features, model, then the recipe's WFST
    decoder over its pseudo-log-likelihoods (see :func:`write_inference_folder`)."""

    HPARAMS_NEEDED = ["decoder"]
    MODULES_NEEDED = ["encoder"]

    def transcribe_batch(self, wavs: torch.Tensor, wav_lens: torch.Tensor) -> List[str]:
        """Words of each ``[batch, samples]`` waveform (relative lengths ``wav_lens``)."""
        with torch.no_grad():
            log_posteriors = self.mods.encoder(wavs.to(self.device), wav_lens.to(self.device))
        num_samples = torch.round(wav_lens * wavs.shape[1]).long()
        frames = num_frames(num_samples, self.mods.encoder.hop_samples)  # the encoder's frames
        return [
            " ".join(self.hparams.decoder.transcribe(utterance[:length].float().cpu().numpy()))
            for utterance, length in zip(log_posteriors, frames.tolist())
        ]

    def transcribe_file(self, path: str) -> str:
        """Words of an audio file (resampled to the model's rate, first channel)."""
        waveform = self.load_audio(path)
        return self.transcribe_batch(waveform[None], torch.ones(1))[0]

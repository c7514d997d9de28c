"""Export a trained CTC model as a folder that ``speechbrain.inference.ASR.EncoderASR`` loads.

    from speechbrain.inference.ASR import EncoderASR
    asr = EncoderASR.from_hparams(source="results/cnn_ctc/1986/inference", savedir="...")
    asr.transcribe_file("utterance.wav")

The folder holds ``hyperparams.yaml`` (the run's features and architecture, as resolved when
it trained, plus the encoder, the greedy CTC decoder and a pretrainer), ``model.ckpt``,
``normalizer.ckpt`` and ``tokenizer.ckpt`` (the SentencePiece model).
"""

import io
import shutil
from pathlib import Path
from typing import Dict

from ruamel.yaml import YAML

from blend_modules.frames import hop_samples

INFERENCE_YAML = """
audio_normalizer: !new:speechbrain.dataio.preprocess.AudioNormalizer
    sample_rate: {sample_rate}   # files are resampled to it (the default would be 16 kHz)
encoder: !new:blend_modules.models.FeatureEncoder
    compute_features: !ref <features[compute_features]>
    normalize: !ref <normalize>
    model: !ref <architecture[model]>
    hop_samples: {hop}
tokenizer: !new:sentencepiece.SentencePieceProcessor
decoding_function: !name:speechbrain.decoders.ctc_greedy_decode
    blank_id: {blank}
modules:
    encoder: !ref <encoder>
pretrainer: !new:speechbrain.utils.parameter_transfer.Pretrainer
    loadables:
        model: !ref <architecture[model]>
        normalizer: !ref <normalize>
        tokenizer: !ref <tokenizer>
"""


def write_inference_folder(hparams: Dict, checkpoint, folder) -> Path:
    """Write ``folder`` for EncoderASR from a CTC run's best ``checkpoint`` and tokenizer."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    yaml = YAML()
    saved = yaml.load(Path(hparams["output_folder"], "hyperparams.yaml"))
    kept = {key: saved[key] for key in ("features", "normalize", "architecture")}
    text = io.StringIO()
    yaml.dump(kept, text)
    targets = hparams["targets"]
    text.write(
        INFERENCE_YAML.format(
            sample_rate=hparams["features"]["sample_rate"],
            hop=hop_samples(hparams["features"]),
            blank=targets.blank_index,
        )
    )
    (folder / "hyperparams.yaml").write_text(text.getvalue())
    shutil.copy(Path(checkpoint.path, "model.ckpt"), folder / "model.ckpt")
    shutil.copy(Path(checkpoint.path, "normalizer.ckpt"), folder / "normalizer.ckpt")
    shutil.copy(targets.tokenizer_file, folder / "tokenizer.ckpt")
    return folder

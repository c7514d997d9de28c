"""Manifests and targets -> SpeechBrain ``DynamicItemDataset`` pipelines, checked up front.

A manifest is a SpeechBrain CSV with at least the columns ``ID``, ``duration`` (seconds) and
``wav`` (a path; ``$data_root`` stands for the manifest's folder), plus ``words`` for CTC
targets. Every file, sample rate and channel count is checked, then the targets check their
own inputs (alignment lengths and labels, or transcripts), before any training starts, so a
bad corpus fails in seconds with the file, line and utterance named.
"""

import csv
from pathlib import Path
from typing import Dict

import soundfile as sf
import speechbrain as sb
from speechbrain.dataio.sampler import DynamicBatchSampler

from blend_modules.frames import hop_samples

SPLITS = ("train", "valid", "test")
REQUIRED_COLUMNS = ("ID", "duration", "wav")


def audio_path(wav: str, manifest: Path) -> Path:
    """Resolve a manifest's ``wav`` entry (``$data_root`` = the manifest's folder)."""
    return Path(wav.replace("$data_root", str(manifest.parent)))


def check_manifest(manifest, sample_rate: int) -> Dict[str, int]:
    """Check a manifest and its audio; return each utterance's number of samples.

    Raises ``ValueError`` naming the file, line and utterance for missing columns, duplicate
    IDs, or audio that is missing, unreadable, not mono or not at ``sample_rate``.
    """
    manifest = Path(manifest)
    if not manifest.is_file():
        raise FileNotFoundError(f"Manifest not found: {manifest}")
    with open(manifest, newline="") as csv_file:
        reader = csv.DictReader(csv_file)
        missing = [c for c in REQUIRED_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(
                f"{manifest}: missing column(s) {missing}; header {reader.fieldnames}."
            )
        rows = list(reader)
    if not rows:
        raise ValueError(f"{manifest}: the manifest has no utterances.")

    num_samples = {}
    for line, row in enumerate(rows, start=2):
        utt_id, where = row["ID"], f"{manifest}:{line} (utterance '{row['ID']}')"
        if utt_id in num_samples:
            raise ValueError(f"{where}: duplicate utterance ID.")
        path = audio_path(row["wav"], manifest)
        try:
            info = sf.info(str(path))
        except Exception as error:  # soundfile raises several types for unreadable files
            raise ValueError(f"{where}: cannot read audio {path}: {error}") from error
        if info.samplerate != sample_rate:
            raise ValueError(
                f"{where}: {path} has sample rate {info.samplerate} Hz, expected {sample_rate}."
            )
        if info.channels != 1:
            raise ValueError(f"{where}: {path} has {info.channels} channels, expected mono.")
        num_samples[utt_id] = info.frames
    return num_samples


def train_loader_kwargs(dataset, hparams: Dict) -> Dict:
    """Training dataloader options: with ``dynamic_batching``, a ``DynamicBatchSampler`` that
    groups utterances of similar duration (``dynamic_batch_sampler`` options, lengths in
    seconds), so batches stay shuffled but carry little padding; else ``train_dataloader_opts``."""
    if not hparams["dynamic_batching"]:
        return hparams["train_dataloader_opts"]
    sampler = DynamicBatchSampler(
        dataset, length_func=lambda item: item["duration"], **hparams["dynamic_batch_sampler"]
    )
    return {"batch_sampler": sampler}


def dataio_prepare(hparams: Dict) -> Dict[str, sb.dataio.dataset.DynamicItemDataset]:
    """Check each split's manifest, audio and targets, then build its dataset.

    Uses the hparams keys ``{split}_csv`` for each split, ``features`` and ``targets`` (already
    prepared). Every dataset provides ``id``, ``sig`` (waveform) and the targets' items; valid
    and test are sorted by duration.
    """
    features, targets = hparams["features"], hparams["targets"]

    @sb.utils.data_pipeline.takes("wav")
    @sb.utils.data_pipeline.provides("sig")
    def audio_pipeline(wav):
        return sb.dataio.dataio.read_audio(wav)

    datasets = {}
    for split in SPLITS:
        manifest = Path(hparams[f"{split}_csv"])
        num_samples = check_manifest(manifest, features["sample_rate"])
        dataset = sb.dataio.dataset.DynamicItemDataset.from_csv(
            csv_path=str(manifest), replacements={"data_root": str(manifest.parent)}
        )
        dataset.add_dynamic_item(audio_pipeline)
        target_keys = targets.add_to_dataset(
            dataset, split, manifest, num_samples, hop_samples(features)
        )
        dataset.set_output_keys(["id", "sig", *target_keys])
        if split != "train":  # order is free when evaluating: sort to pad little
            dataset = dataset.filtered_sorted(sort_key="duration")
        datasets[split] = dataset
    return datasets

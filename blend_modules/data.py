"""Manifests and frame targets -> SpeechBrain ``DynamicItemDataset`` pipelines, checked up front.

A manifest is a SpeechBrain CSV with at least the columns ``ID``, ``duration`` (seconds) and
``wav`` (a path; ``$data_root`` stands for the manifest's folder). Frame targets are a Kaldi
alignment file per split (see :mod:`blend_modules.alignments`). Every file, sample rate,
channel count, alignment length and label is checked before any training starts, so a bad
corpus fails in seconds with the file, line and utterance named.
"""

import csv
from pathlib import Path
from typing import Dict, Mapping

import soundfile as sf
import speechbrain as sb
import torch
from speechbrain.dataio.sampler import DynamicBatchSampler

from blend_modules.alignments import read_alignments
from blend_modules.frames import hop_samples, num_frames

SPLITS = ("train", "valid", "test")
REQUIRED_COLUMNS = ("ID", "duration", "wav")


def audio_path(wav: str, manifest: Path) -> Path:
    """Resolve a manifest's ``wav`` entry (``$data_root`` = the manifest's folder)."""
    return Path(wav.replace("$data_root", str(manifest.parent)))


def check_manifest(
    manifest, sample_rate: int, hop: int, alignments: Mapping = None
) -> None:
    """Check a manifest and its alignments; raise ``ValueError`` naming the file/line/utterance.

    Checks: columns present, IDs unique, each audio file readable, mono, at ``sample_rate``;
    with ``alignments``: every utterance has one, of exactly the feature frame count, and no
    alignment belongs to an utterance missing from the manifest.
    """
    manifest = Path(manifest)
    if not manifest.is_file():
        raise FileNotFoundError(f"Manifest not found: {manifest}")
    with open(manifest, newline="") as csv_file:
        reader = csv.DictReader(csv_file)
        missing = [c for c in REQUIRED_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{manifest}: missing column(s) {missing}; header {reader.fieldnames}.")
        rows = list(reader)
    if not rows:
        raise ValueError(f"{manifest}: the manifest has no utterances.")

    seen = set()
    for line, row in enumerate(rows, start=2):
        utt_id, where = row["ID"], f"{manifest}:{line} (utterance '{row['ID']}')"
        if utt_id in seen:
            raise ValueError(f"{where}: duplicate utterance ID.")
        seen.add(utt_id)
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
        if alignments is None:
            continue
        if utt_id not in alignments:
            raise ValueError(f"{where}: no alignment for this utterance.")
        expected = num_frames(info.frames, hop)
        if len(alignments[utt_id]) != expected:
            raise ValueError(
                f"{where}: alignment has {len(alignments[utt_id])} frames, the features have "
                f"{expected} ({info.frames} samples, hop {hop})."
            )
    if alignments is not None:
        unknown = sorted(set(alignments) - seen)
        if unknown:
            raise ValueError(
                f"Alignments of {len(unknown)} utterance(s) not in {manifest}, e.g. '{unknown[0]}'."
            )


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
    """Check each split's manifest and alignments, then build its dataset.

    Uses the hparams keys ``{split}_csv`` and ``{split}_alignments`` for each split, plus
    ``num_labels`` and the feature settings in ``features``. Every dataset provides ``id``,
    ``sig`` (waveform) and ``frame_labels``; valid and test are sorted by duration.
    """
    features = hparams["features"]

    @sb.utils.data_pipeline.takes("wav")
    @sb.utils.data_pipeline.provides("sig")
    def audio_pipeline(wav):
        return sb.dataio.dataio.read_audio(wav)

    datasets = {}
    for split in SPLITS:
        manifest = Path(hparams[f"{split}_csv"])
        alignments = read_alignments(hparams[f"{split}_alignments"], hparams["num_labels"])
        check_manifest(manifest, features["sample_rate"], hop_samples(features), alignments)
        dataset = sb.dataio.dataset.DynamicItemDataset.from_csv(
            csv_path=str(manifest), replacements={"data_root": str(manifest.parent)}
        )

        @sb.utils.data_pipeline.takes("id")
        @sb.utils.data_pipeline.provides("frame_labels")
        def label_pipeline(utt_id, alignments=alignments):
            return torch.from_numpy(alignments[utt_id])

        dataset.add_dynamic_item(audio_pipeline)
        dataset.add_dynamic_item(label_pipeline)
        dataset.set_output_keys(["id", "sig", "frame_labels"])
        if split != "train":  # order is free when evaluating: sort to pad little
            dataset = dataset.filtered_sorted(sort_key="duration")
        datasets[split] = dataset
    return datasets

"""Manifests and targets -> SpeechBrain ``DynamicItemDataset`` pipelines, checked up front
(:mod:`blend_modules.data.manifests` for the audio, the targets for their own inputs), and the
training loader's batching (dynamic batches by duration where the YAML asks for them)."""

import logging
from pathlib import Path
from typing import Dict, List, NamedTuple, Optional, Set

import speechbrain as sb
import torch
from speechbrain.dataio.dataio import load_data_csv
from speechbrain.dataio.sampler import DynamicBatchSampler

from blend_modules.data.audio import read_segment
from blend_modules.data.frames import hop_samples
from blend_modules.data.manifests import (
    check_column,
    check_manifest,
    segment_lengths,
    test_manifests,
)

logger = logging.getLogger(__name__)


class DatasetItems(NamedTuple):
    """What targets add to a dataset: its output keys, and the utterances they can train on."""

    keys: List[str]
    utterances: Set[str]


def train_loader_kwargs(dataset, hparams: Dict) -> Dict:
    """Training dataloader options: with ``dynamic_batching``, a ``DynamicBatchSampler`` that
    groups utterances of similar duration (``dynamic_batch_sampler`` options, lengths in
    seconds), so batches stay shuffled but carry little padding, with the other
    ``train_dataloader_opts`` (e.g. ``num_workers``); else ``train_dataloader_opts``."""
    # A generator of its own stops the DataLoader from drawing each epoch's worker seed from
    # the global random state, which a resumed run restores from its checkpoint: resuming in
    # mid-epoch then replays the same dropout masks.
    generator = {"generator": torch.Generator().manual_seed(hparams["seed"])}
    if not hparams["dynamic_batching"]:
        return {**hparams["train_dataloader_opts"], **generator}
    # seeded from the run's seed (SpeechBrain's default is one fixed seed), so that seeds differ
    # in data order too; the Brain reshuffles it every epoch (TeacherBrain.make_dataloader)
    options = {"seed": hparams["seed"], **hparams["dynamic_batch_sampler"]}
    sampler = DynamicBatchSampler(dataset, length_func=lambda item: item["duration"], **options)
    # the sampler makes the batches; other options (num_workers, ...) still apply
    other_options = {
        key: value
        for key, value in hparams["train_dataloader_opts"].items()
        if key not in ("batch_size", "shuffle", "drop_last")
    }
    return {**other_options, "batch_sampler": sampler, **generator}


def batch_groups(batch, group_by: Optional[str]) -> List[Optional[str]]:
    """Each utterance's value of the batch item ``group_by`` (a manifest column), or None."""
    return list(getattr(batch, group_by)) if group_by else [None] * len(batch.id)


def check_speakers(speakers_of: Dict[str, Set[str]], manifests: Dict, allow_shared: bool) -> None:
    """Refuse (``ValueError``) a speaker (``spk_id``) in two splits, naming the speaker and both
    manifests: a model would be chosen or tested on a voice it trained on. With
    ``allow_shared`` (a corpus that is speaker-dependent by design) a warning instead."""
    splits = list(speakers_of)
    for index, split in enumerate(splits):
        for other in splits[index + 1 :]:
            shared = sorted(speakers_of[split] & speakers_of[other])
            if not shared:
                continue
            message = (
                f"{len(shared)} speaker(s) in {manifests[split]} ({split}) and in "
                f"{manifests[other]} ({other}), e.g. '{shared[0]}'"
            )
            if not allow_shared:
                raise ValueError(
                    f"{message}: splits must not share speakers (allow_shared_speakers: True "
                    "for a corpus that is speaker-dependent by design)."
                )
            logger.warning("%s (allow_shared_speakers: True).", message)


def dataio_prepare(hparams: Dict) -> Dict:
    """Check every split's manifest, audio and targets, and that no two splits share an
    utterance ID or (where manifests have ``spk_id``) a speaker, unless the YAML sets
    ``allow_shared_speakers: True``; then build each split's dataset.

    Uses the hparams keys ``train_csv``, ``valid_csv``, ``test_csv`` (see ``test_manifests``),
    ``features``, ``targets`` (already prepared) and, optionally, ``test_breakdown``: a
    manifest column that test batches carry, for metrics per value of it (e.g. ``age_group``).
    Returns ``train`` and ``valid`` datasets and ``test``, a mapping of test set names to
    datasets. Every dataset provides ``id``, ``sig`` (waveform) and the targets' items;
    utterances the targets cannot use (e.g. without alignment, where the targets allow
    skipping) are left out; valid and test are sorted by duration.
    """
    features, targets = hparams["features"], hparams["targets"]
    manifests = {"train": hparams["train_csv"], "valid": hparams["valid_csv"]}
    manifests.update(test_manifests(hparams))
    datasets, split_of, speakers_of = {}, {}, {}
    for split, manifest in manifests.items():
        manifest = Path(manifest)
        segments = check_manifest(manifest, features["sample_rate"])
        shared = next((utt_id for utt_id in segments if utt_id in split_of), None)
        if shared is not None:  # a model would be tested on what it trained or chose on
            raise ValueError(
                f"Utterance '{shared}' is in {manifest} ({split}) and in "
                f"{manifests[split_of[shared]]} ({split_of[shared]}): splits must not share "
                "utterances."
            )
        split_of.update(dict.fromkeys(segments, split))
        rows = load_data_csv(str(manifest), replacements={"data_root": str(manifest.parent)})
        speakers_of[split] = {row["spk_id"] for row in rows.values() if row.get("spk_id")}
        dataset = sb.dataio.dataset.DynamicItemDataset(rows)

        @sb.utils.data_pipeline.takes("id")
        @sb.utils.data_pipeline.provides("sig")
        def audio_pipeline(utt_id, segments=segments, manifest=manifest):
            try:
                return read_segment(*segments[utt_id])
            except RuntimeError as error:
                raise RuntimeError(f"{manifest}: utterance '{utt_id}': {error}") from error

        dataset.add_dynamic_item(audio_pipeline)
        items = targets.add_to_dataset(
            dataset, split, manifest, segment_lengths(segments), hop_samples(features)
        )
        extra_keys = []
        if split != "train" and hparams.get("test_breakdown"):  # valid is also decoded as a test
            check_column(rows, manifest, hparams["test_breakdown"], "test_breakdown")
            extra_keys = [hparams["test_breakdown"]]
        dataset.set_output_keys(["id", "sig", *items.keys, *extra_keys])
        if len(items.utterances) < len(segments) or split != "train":
            dataset = dataset.filtered_sorted(
                key_test={"id": items.utterances.__contains__},
                sort_key=None if split == "train" else "duration",  # evaluating: pad little
            )
        datasets[split] = dataset
    check_speakers(speakers_of, manifests, hparams.get("allow_shared_speakers", False))
    return {
        "train": datasets.pop("train"),
        "valid": datasets.pop("valid"),
        "test": datasets,
    }

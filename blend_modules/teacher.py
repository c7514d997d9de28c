"""The teacher: loaded from its own training folder, run online, or dumped to a top-k store.

A teacher folder is what ``train_teacher.py`` writes: ``hyperparams.yaml`` (with ``features``,
``normalize`` and ``model``) and ``save/`` with checkpoints holding the recoverables ``model``
and ``normalizer``. Any architecture declared that way can teach; the student's script needs
no change.

The offline store keeps, per utterance (keyed by utterance ID, never by batch position), the
teacher's top-k label ids (int16/int32) and renormalised probabilities (float16), in numpy shards
that are memory-mapped on read, plus ``metadata.json`` recording k, T, the label count, the
teacher checkpoint and the feature settings. A store is only used by a run asking for exactly
those settings.
"""

import json
import logging
import random
from contextlib import contextmanager
from pathlib import Path
from typing import Dict, Iterable, Tuple

import numpy as np
import torch
from hyperpyyaml import load_hyperpyyaml
from speechbrain.dataio.batch import PaddedBatch
from speechbrain.dataio.dataloader import make_dataloader
from speechbrain.utils.checkpoints import Checkpointer
from speechbrain.utils.data_pipeline import provides, takes
from speechbrain.utils.distributed import run_on_main
from torch.nn.utils.rnn import pad_sequence

from blend_modules.frames import frame_counts
from blend_modules.losses import teacher_confidence, teacher_topk

logger = logging.getLogger(__name__)

METADATA_FILE = "metadata.json"
STORE_FORMAT = 1


def feature_settings(features: Dict) -> Dict:
    """The scalar settings of a ``features`` hparams block (what must match between models)."""
    return {key: value for key, value in features.items() if isinstance(value, (int, float, str))}


class Teacher(torch.nn.Module):
    """A trained teacher: its own input normalisation followed by its model.

    It runs on each utterance alone, so its posteriors never depend on how an utterance was
    batched or padded (a BLSTM's backward pass would otherwise start in the padding). That makes
    the online teacher and the offline store agree exactly; inference costs about 1.6x a padded
    batch on CPU for the demo BLSTM.
    """

    def __init__(
        self, normalize: torch.nn.Module, model: torch.nn.Module, features: Dict, checkpoint: str
    ):
        super().__init__()
        self.normalize, self.model = normalize, model
        self.feature_settings = feature_settings(features)
        self.checkpoint = checkpoint

    def forward(self, features: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Per-frame logits ``[batch, frames, labels]`` (zero beyond each utterance's ``lengths``)
        from unnormalised ``[batch, frames, features]``."""
        utterances = [
            self.model(self.normalize(features[i : i + 1, :length]))[0]
            for i, length in enumerate(lengths.tolist())
        ]
        logits = pad_sequence(utterances, batch_first=True)
        return torch.nn.functional.pad(logits, (0, 0, 0, features.shape[1] - logits.shape[1]))


@contextmanager
def preserved_random_state():
    """Restore the Python, numpy and torch random states on exit."""
    states = random.getstate(), np.random.get_state(), torch.random.get_rng_state()
    cuda_states = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None
    try:
        yield
    finally:
        random.setstate(states[0])
        np.random.set_state(states[1])
        torch.random.set_rng_state(states[2])
        if cuda_states is not None:
            torch.cuda.set_rng_state_all(cuda_states)


def load_teacher(teacher_folder, student_features: Dict, student_targets) -> Teacher:
    """Load the best (lowest valid error) checkpoint of a trained teacher, in eval mode.

    Raises ``ValueError`` if the folder holds no trained teacher, if its checkpoint does not fit
    the architecture in its ``hyperparams.yaml``, or if its features or outputs (labels, or CTC
    units) differ from the student's (blending compares the two frame by frame).
    """
    teacher_folder = Path(teacher_folder)
    hparams_file = teacher_folder / "hyperparams.yaml"
    if not hparams_file.is_file():
        raise ValueError(
            f"teacher_folder {teacher_folder} has no hyperparams.yaml: train the teacher first "
            "(python train_teacher.py hparams/blstm.yaml) or point teacher_folder at it."
        )
    with open(hparams_file) as fin, preserved_random_state():  # the YAML reseeds on load
        teacher_hparams = load_hyperpyyaml(fin)
    mismatched = {
        key: (value, feature_settings(student_features).get(key))
        for key, value in feature_settings(teacher_hparams["features"]).items()
        if feature_settings(student_features).get(key) != value
    }
    if mismatched:
        raise ValueError(
            f"Teacher {teacher_folder} used other features than the student "
            f"(key: (teacher, student)): {mismatched}. Teacher and student must share frames."
        )
    teacher_targets = teacher_hparams["targets"]
    teacher_targets.prepare()
    if teacher_targets.outputs() != student_targets.outputs():
        raise ValueError(
            f"Teacher {teacher_folder} predicts other outputs than the student: "
            f"{describe_outputs(teacher_targets.outputs())} against "
            f"{describe_outputs(student_targets.outputs())}."
        )
    model, normalize = teacher_hparams["model"], teacher_hparams["normalize"]
    checkpointer = Checkpointer(
        teacher_folder / "save", recoverables={"model": model, "normalizer": normalize}
    )
    checkpoint = checkpointer.find_checkpoint(min_key=teacher_targets.error_key)
    if checkpoint is None:
        raise ValueError(f"No teacher checkpoint in {teacher_folder / 'save'}: train it first.")
    try:
        checkpointer.load_checkpoint(checkpoint)
    except (RuntimeError, KeyError) as error:
        raise ValueError(
            f"Teacher checkpoint {checkpoint.path} does not fit the model in {hparams_file}: {error}"
        ) from error
    logger.info(
        "Loaded teacher %s (valid %s %.4f).",
        checkpoint.path,
        teacher_targets.error_key,
        checkpoint.meta[teacher_targets.error_key],
    )
    teacher = Teacher(normalize, model, teacher_hparams["features"], str(checkpoint.path.resolve()))
    return teacher.eval()


def describe_outputs(outputs: Dict) -> str:
    """A short description of a targets' ``outputs()`` for error messages."""
    units = outputs.get("units")
    shown = f", units {units[:8]}{'...' if len(units) > 8 else ''}" if units else ""
    return f"{outputs['kind']} targets with {outputs['num_labels']} outputs{shown}"


def store_metadata(teacher: Teacher, top_k: int, temperature: float, outputs: Dict) -> Dict:
    """What a store must have been written with to be used by this run."""
    return {
        "format": STORE_FORMAT,
        "top_k": top_k,
        "temperature": float(temperature),
        "outputs": outputs,
        "teacher_checkpoint": teacher.checkpoint,
        "features": teacher.feature_settings,
    }


@torch.no_grad()
def dump_teacher_store(
    teacher: Teacher,
    compute_features: torch.nn.Module,
    batches: Iterable[PaddedBatch],
    store_folder,
    metadata: Dict,
    device: str = "cpu",
    utterances_per_shard: int = 2000,
) -> Dict:
    """Run the teacher once over ``batches`` (with ``id`` and ``sig``) and write its top-k store.

    Returns the metadata written, which adds per-utterance shard offsets, bytes per frame and the
    teacher's mean top-1 probability and entropy on these frames.
    """
    store_folder = Path(store_folder)
    store_folder.mkdir(parents=True, exist_ok=True)
    (store_folder / METADATA_FILE).unlink(missing_ok=True)  # a store without it is incomplete
    teacher = teacher.to(device).eval()
    num_labels = metadata["outputs"]["num_labels"]
    id_dtype = np.int16 if num_labels <= np.iinfo(np.int16).max else np.int32
    index, shard_ids, shard_probs, shards = {}, [], [], []
    sums = {"top1": 0.0, "entropy": 0.0, "frames": 0}

    def write_shard():
        name = f"shard_{len(shards):05d}"
        np.save(store_folder / f"{name}_ids.npy", np.concatenate(shard_ids))
        np.save(store_folder / f"{name}_probs.npy", np.concatenate(shard_probs))
        shards.append(name)
        shard_ids.clear()
        shard_probs.clear()

    for batch in batches:
        batch = batch.to(device)
        wavs, wav_lens = batch.sig
        lengths = frame_counts(wav_lens, wavs.shape[1], metadata["features"])
        logits = teacher(compute_features(wavs), lengths)
        top1, entropy, frames = teacher_confidence(logits, lengths)
        sums["top1"] += top1.item()
        sums["entropy"] += entropy.item()
        sums["frames"] += frames.item()
        topk_ids, topk_probs = teacher_topk(logits, metadata["top_k"], metadata["temperature"])
        for utt_id, ids, probs, length in zip(batch.id, topk_ids, topk_probs, lengths.tolist()):
            if utt_id in index:
                raise ValueError(f"Utterance '{utt_id}' appears twice in the data to store.")
            start = sum(len(a) for a in shard_ids)
            index[utt_id] = [len(shards), start, length]
            shard_ids.append(ids[:length].cpu().numpy().astype(id_dtype))
            shard_probs.append(probs[:length].cpu().numpy().astype(np.float16))
            if len(shard_ids) >= utterances_per_shard:
                write_shard()
    if shard_ids:
        write_shard()

    written = {
        **metadata,
        "shards": shards,
        "utterances": index,
        "frames": sums["frames"],
        "bytes_per_frame": metadata["top_k"] * (np.dtype(id_dtype).itemsize + 2),
        "teacher_top1": sums["top1"] / max(sums["frames"], 1),
        "teacher_entropy": sums["entropy"] / max(sums["frames"], 1),
    }
    (store_folder / METADATA_FILE).write_text(json.dumps(written))
    return written


class TeacherStore:
    """Reads a store written by :func:`dump_teacher_store`, refusing mismatched settings.

    ``store[utt_id]`` gives ``(teacher_topk_ids, teacher_topk_probs)`` tensors ``[frames, k]``.
    """

    def __init__(self, store_folder, expected_metadata: Dict):
        self.folder = Path(store_folder)
        metadata_path = self.folder / METADATA_FILE
        if not metadata_path.is_file():
            raise ValueError(f"{self.folder} is not a complete teacher store (no {METADATA_FILE}).")
        self.metadata = json.loads(metadata_path.read_text())
        mismatched = {
            key: (self.metadata.get(key), value)
            for key, value in expected_metadata.items()
            if self.metadata.get(key) != value
        }
        if mismatched:
            raise ValueError(
                f"Teacher store {self.folder} was written with other settings "
                f"(key: (store, this run)): {mismatched}. Delete it, or set teacher_store "
                "to another folder, to write a new one."
            )
        self.shards = {}

    def check_covers(self, utterance_ids: Iterable[str]) -> None:
        """Raise ``ValueError`` naming an utterance that the store lacks."""
        missing = [utt for utt in utterance_ids if utt not in self.metadata["utterances"]]
        if missing:
            raise ValueError(
                f"Teacher store {self.folder} lacks {len(missing)} training utterance(s), "
                f"e.g. '{missing[0]}'."
            )

    def _shard(self, number: int) -> Tuple[np.ndarray, np.ndarray]:
        if number not in self.shards:
            name = self.metadata["shards"][number]
            self.shards[number] = tuple(
                np.load(self.folder / f"{name}_{part}.npy", mmap_mode="r")
                for part in ("ids", "probs")
            )
        return self.shards[number]

    def __getitem__(self, utt_id: str) -> Tuple[torch.Tensor, torch.Tensor]:
        shard, start, length = self.metadata["utterances"][utt_id]
        ids, probs = self._shard(shard)
        return (
            torch.from_numpy(ids[start : start + length].astype(np.int64)),
            torch.from_numpy(probs[start : start + length].astype(np.float32)),
        )


def attach_teacher_store(dataset, teacher: Teacher, hparams: Dict, device: str = "cpu") -> Dict:
    """Give ``dataset`` the items ``teacher_topk_ids`` and ``teacher_topk_probs`` from the store
    in ``hparams['teacher_store']``, dumping it first (on the main process) if it is absent.

    An existing store written with other settings is refused, never overwritten.
    Returns the store's metadata summary (bytes per frame, teacher confidence).
    """
    folder = Path(hparams["teacher_store"])
    expected = store_metadata(
        teacher, hparams["top_k"], hparams["temperature"], hparams["targets"].outputs()
    )
    if not (folder / METADATA_FILE).is_file():
        loader = make_dataloader(dataset, **hparams["eval_dataloader_opts"])
        run_on_main(
            dump_teacher_store,
            args=[teacher, hparams["features"]["compute_features"], loader, folder, expected],
            kwargs={"device": device},
        )
    store = TeacherStore(folder, expected)
    store.check_covers(dataset.data_ids)
    summary = {
        key: store.metadata[key]
        for key in ("bytes_per_frame", "frames", "teacher_top1", "teacher_entropy")
    }
    logger.info(
        "Teacher store %s: %d frames, %d bytes per frame; teacher mean top-1 %.3f, entropy %.3f nats.",
        folder,
        summary["frames"],
        summary["bytes_per_frame"],
        summary["teacher_top1"],
        summary["teacher_entropy"],
    )

    @takes("id")
    @provides("teacher_topk_ids", "teacher_topk_probs")
    def store_pipeline(utt_id):
        teacher_topk_ids, teacher_topk_probs = store[utt_id]
        yield teacher_topk_ids
        yield teacher_topk_probs

    dataset.add_dynamic_item(store_pipeline)
    dataset.set_output_keys(
        [*dataset.pipeline.output_mapping, "teacher_topk_ids", "teacher_topk_probs"]
    )
    return summary

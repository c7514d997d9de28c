"""The teacher dumped once to a top-k store and read back by utterance ID.

The offline store keeps, per utterance (keyed by utterance ID, never by batch position), the
teacher's ``k_max`` most likely label ids per frame (int16, or int32 beyond 32,768 labels) and
their log-probabilities at T = 1 (float16): 4 · k_max bytes per frame. Any k <= k_max at any
temperature is derived when reading (:func:`blend_modules.training.losses.soft_targets`),
so one dump serves a whole sweep. ``metadata.json`` records k_max, the outputs, the teacher
checkpoint (by name, so a results folder can move) and the feature settings; a run asking for
anything else is refused. Every file is written to a temporary name and renamed, ``metadata.json``
last, so a killed dump never looks complete; a shard's SHA-256 is checked when it is written and
when a dump resumes, and each utterance's CRC-32 when it is read, so opening a store costs only its
metadata and corrupt data is refused before it trains a model."""

import fcntl
import hashlib
import io
import json
import logging
import os
import zlib
from contextlib import contextmanager
from pathlib import Path
from typing import Dict, Iterable, List, Tuple

import numpy as np
import torch
from speechbrain.dataio.batch import PaddedBatch
from speechbrain.utils.data_pipeline import provides, takes
from speechbrain.utils.distributed import ddp_barrier, if_main_process
from torch import nn

from blend_modules.data.atomic_files import file_sha256, write_atomically
from blend_modules.data.frames import frame_counts
from blend_modules.training.checkpoints import preserved_random_state
from blend_modules.training.losses import teacher_confidence, teacher_topk
from blend_modules.training.teacher import OutOfFoldTeacher, Teacher

logger = logging.getLogger(__name__)

METADATA_FILE = "metadata.json"


PLAN_FILE = "dump_plan.json"


STORE_FORMAT = 3


def store_metadata(teacher: Teacher, store_top_k: int, outputs: Dict) -> Dict:
    """What a store must have been written with to be used by this run."""
    return {
        "format": STORE_FORMAT,
        "top_k": store_top_k,
        "outputs": outputs,
        "teacher_checkpoint": teacher.checkpoint,
        "features": teacher.feature_settings,
    }


def label_id_dtype(num_labels: int) -> type:
    """The narrowest integer type that holds every label id: int16 up to 32,768 labels."""
    return np.int16 if num_labels - 1 <= np.iinfo(np.int16).max else np.int32


def shard_plan(num_utterances: int, utterances_per_shard: int) -> List[range]:
    """The dataset positions of each shard: consecutive runs of ``utterances_per_shard``
    utterances, so a resumed or distributed dump writes exactly the shards an uninterrupted one
    would."""
    return [
        range(start, min(start + utterances_per_shard, num_utterances))
        for start in range(0, num_utterances, utterances_per_shard)
    ]


def shard_files(folder: Path, name: str) -> Dict[str, Path]:
    """A shard's array files."""
    return {part: folder / f"{name}_{part}.npy" for part in ("ids", "log_probs")}


def verified_shard(folder: Path, name: str) -> Dict:
    """The index of a completely written shard (``<name>.json``, written after its arrays)
    whose arrays match their SHA-256, or None (a dump then rewrites it)."""
    index_path = folder / f"{name}.json"
    if not index_path.is_file():
        return None
    index = json.loads(index_path.read_text())
    for part, path in shard_files(folder, name).items():
        if not path.is_file() or file_sha256(path) != index["sha256"][part]:
            return None
    return index


def utterance_crc32(ids: np.ndarray, log_probs: np.ndarray) -> int:
    """CRC-32 of one utterance's stored arrays, checked each time they are read."""
    return zlib.crc32(np.ascontiguousarray(log_probs), zlib.crc32(np.ascontiguousarray(ids)))


def write_array(path: Path, array: np.ndarray) -> str:
    """Write ``array`` as ``.npy`` atomically, check what landed on disk, return its SHA-256."""
    buffer = io.BytesIO()
    np.save(buffer, array)
    expected = hashlib.sha256(buffer.getbuffer()).hexdigest()
    write_atomically(path, lambda stream: stream.write(buffer.getbuffer()))
    if file_sha256(path) != expected:
        raise RuntimeError(f"{path}: the file read back differs from what was written.")
    return expected


@torch.no_grad()
def dump_shard(
    teacher: Teacher,
    compute_features: torch.nn.Module,
    dataset,
    positions: range,
    folder: Path,
    name: str,
    metadata: Dict,
    device: str,
    batch_size: int,
) -> Dict:
    """Run the teacher over the utterances at ``positions`` of ``dataset`` in padded batches of
    similar durations; write the shard's arrays, then its index."""
    by_duration = sorted(
        positions, key=lambda position: float(dataset.data[dataset.data_ids[position]]["duration"])
    )
    loader = torch.utils.data.DataLoader(
        torch.utils.data.Subset(dataset, by_duration),
        batch_size=batch_size,
        collate_fn=PaddedBatch,
    )
    id_dtype = label_id_dtype(metadata["outputs"]["num_labels"])
    utterances, all_ids, all_log_probs, frames = {}, [], [], 0
    sums = {"top1": 0.0, "entropy": 0.0}
    for batch in loader:
        batch = batch.to(device)
        wavs, wav_lens = batch.sig
        lengths = frame_counts(wav_lens, wavs.shape[1], metadata["features"])
        logits = teacher(compute_features(wavs), lengths)
        top1, entropy, _ = teacher_confidence(logits, lengths)
        sums["top1"] += top1.item()
        sums["entropy"] += entropy.item()
        topk_ids, topk_log_probs = teacher_topk(logits, metadata["top_k"])
        for utt_id, ids, log_probs, length in zip(
            batch.id, topk_ids, topk_log_probs, lengths.tolist()
        ):
            ids = ids[:length].cpu().numpy().astype(id_dtype)
            log_probs = log_probs[:length].cpu().numpy().astype(np.float16)
            utterances[utt_id] = [frames, length, utterance_crc32(ids, log_probs)]
            all_ids.append(ids)
            all_log_probs.append(log_probs)
            frames += length
    arrays = {"ids": np.concatenate(all_ids), "log_probs": np.concatenate(all_log_probs)}
    files = shard_files(folder, name)
    checksums = {part: write_array(files[part], arrays[part]) for part in files}
    sizes = {part: files[part].stat().st_size for part in files}
    index = {"utterances": utterances, "frames": frames, "sha256": checksums, "bytes": sizes}
    index.update(sums)
    write_atomically(
        folder / f"{name}.json", lambda stream: stream.write(json.dumps(index).encode())
    )
    return index


def dump_teacher_store(
    teacher: Teacher,
    compute_features: torch.nn.Module,
    dataset,
    store_folder,
    metadata: Dict,
    device: str = "cpu",
    utterances_per_shard: int = 2000,
    batch_size: int = 8,
) -> Dict:
    """Run the teacher once over ``dataset`` (items ``id`` and ``sig``) and write its top-k
    store; call it on every process.

    Shards are fixed runs of ``utterances_per_shard`` utterances of the dataset's order; under
    DDP, process r writes shards r, r + world size, ... (no overlap, none left out). Each shard
    is written atomically (arrays, then an index with their SHA-256 and each utterance's
    CRC-32), so a dump killed midway resumes at the shards that are missing or fail their
    SHA-256. The main process writes ``metadata.json`` last: its presence means a complete
    store. Returns that metadata (adding per-utterance offsets and CRC-32s, shard sizes, bytes
    per frame and the teacher's mean top-1 probability and entropy).
    """
    store_folder = Path(store_folder)
    rank, world_size = distributed_rank_and_size()
    plan = {
        **metadata,
        "utterances_per_shard": utterances_per_shard,
        "utterance_ids": hashlib.sha256("\n".join(dataset.data_ids).encode()).hexdigest(),
    }
    plan_path = store_folder / PLAN_FILE
    if if_main_process():
        store_folder.mkdir(parents=True, exist_ok=True)
        (store_folder / METADATA_FILE).unlink(missing_ok=True)
        if plan_path.is_file() and json.loads(plan_path.read_text()) != plan:
            logger.info("%s holds a partial dump of another plan: starting over.", store_folder)
            for stale in store_folder.glob("shard_*"):
                stale.unlink()
        write_atomically(plan_path, lambda stream: stream.write(json.dumps(plan).encode()))
    ddp_barrier()

    shards = shard_plan(len(dataset), utterances_per_shard)
    teacher = teacher.to(device).eval()
    logger.info(
        "Dumping the teacher's top-%d store %s on %s.", metadata["top_k"], store_folder, device
    )
    with dataset.output_keys_as(["id", "sig"]):
        for number in range(rank, len(shards), world_size):
            name = f"shard_{number:05d}"
            if verified_shard(store_folder, name) is None:
                dump_shard(
                    teacher,
                    compute_features,
                    dataset,
                    shards[number],
                    store_folder,
                    name,
                    metadata,
                    device,
                    batch_size,
                )
                logger.info(
                    "Process %d wrote %s/%s (%d utterances).",
                    rank,
                    store_folder,
                    name,
                    len(shards[number]),
                )
            else:
                logger.info("Kept %s/%s from an earlier dump.", store_folder, name)
    ddp_barrier()

    if if_main_process():
        write_store_metadata(store_folder, metadata, len(shards))
    ddp_barrier()
    return json.loads((store_folder / METADATA_FILE).read_text())


def write_store_metadata(store_folder: Path, metadata: Dict, num_shards: int) -> None:
    """Merge the shard indices into ``metadata.json``, written last and atomically."""
    names = [f"shard_{number:05d}" for number in range(num_shards)]
    index, shards, sums = {}, [], {"top1": 0.0, "entropy": 0.0, "frames": 0}
    for number, name in enumerate(names):
        index_path = store_folder / f"{name}.json"  # written after its arrays were checked
        if not index_path.is_file():
            raise RuntimeError(f"{index_path}: shard missing after the dump.")
        shard = json.loads(index_path.read_text())
        shards.append({"name": name, "sha256": shard["sha256"], "bytes": shard["bytes"]})
        for utt_id, (start, length, crc) in shard["utterances"].items():
            index[utt_id] = [number, start, length, crc]
        for key in sums:
            sums[key] += shard[key]
    id_bytes = np.dtype(label_id_dtype(metadata["outputs"]["num_labels"])).itemsize
    written = {
        **metadata,
        "shards": shards,
        "utterances": index,
        "frames": sums["frames"],
        "bytes_per_frame": metadata["top_k"] * (id_bytes + 2),
        "teacher_top1": sums["top1"] / max(sums["frames"], 1),
        "teacher_entropy": sums["entropy"] / max(sums["frames"], 1),
    }
    write_atomically(
        store_folder / METADATA_FILE, lambda stream: stream.write(json.dumps(written).encode())
    )


def distributed_rank_and_size() -> Tuple[int, int]:
    """This process's rank and the number of processes (0, 1 without DDP)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


class TeacherStore:
    """Reads a store written by :func:`dump_teacher_store`, refusing mismatched settings,
    missing or truncated shard files (their sizes, when opened) and corrupt data (each
    utterance's CRC-32, when read).

    ``store[utt_id]`` gives ``(teacher_topk_ids, teacher_topk_log_probs)`` tensors
    ``[frames, top_k]``, the ``top_k`` (<= the store's) most likely labels first.
    """

    def __init__(self, store_folder, expected_metadata: Dict, top_k: int):
        self.folder = Path(store_folder)
        self.metadata_path = self.folder / METADATA_FILE
        if not self.metadata_path.is_file():
            raise ValueError(f"{self.folder} is not a complete teacher store (no {METADATA_FILE}).")
        self.metadata = json.loads(self.metadata_path.read_text())
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
        if top_k > self.metadata["top_k"]:
            raise ValueError(
                f"top_k {top_k} exceeds the {self.metadata['top_k']} labels per frame of teacher "
                f"store {self.folder}: raise teacher_store_top_k (a new store is written)."
            )
        self.top_k = top_k
        for shard in self.metadata["shards"]:
            for part, path in shard_files(self.folder, shard["name"]).items():
                if not path.is_file() or path.stat().st_size != shard["bytes"][part]:
                    self._refuse(path, "is missing or truncated")
        self.shards = {}

    def _refuse(self, path: Path, problem: str):
        raise ValueError(
            f"Teacher store shard {path} {problem}. Delete that shard's files and "
            f"{self.metadata_path}: the next run rewrites only the missing shards."
        )

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
            files = shard_files(self.folder, self.metadata["shards"][number]["name"])
            arrays = []
            for part in ("ids", "log_probs"):
                try:
                    arrays.append(np.load(files[part], mmap_mode="r"))
                except (ValueError, OSError) as error:  # a damaged .npy header
                    self._refuse(files[part], f"cannot be read ({error})")
            self.shards[number] = tuple(arrays)
        return self.shards[number]

    def __getitem__(self, utt_id: str) -> Tuple[torch.Tensor, torch.Tensor]:
        shard, start, length, crc = self.metadata["utterances"][utt_id]
        ids, log_probs = (array[start : start + length] for array in self._shard(shard))
        if utterance_crc32(ids, log_probs) != crc:
            name = self.metadata["shards"][shard]["name"]
            self._refuse(self.folder / name, f"holds corrupt data for utterance '{utt_id}'")
        return (
            torch.from_numpy(ids[:, : self.top_k].astype(np.int64)),
            torch.from_numpy(log_probs[:, : self.top_k].astype(np.float32)),
        )


def store_parts(teacher: nn.Module, hparams: Dict) -> List[Tuple[Teacher, Path, Dict]]:
    """(teacher, folder, the metadata its store must have) of each part of the run's store
    (``hparams['teacher_store']``): the store itself, or for out-of-fold teachers one part per
    fold, ``<teacher_store>/fold_<i>``, written by fold i's teacher. A store keeps
    ``teacher_store_top_k`` labels per frame, at most all."""
    outputs = hparams["targets"].outputs()
    store_top_k = min(hparams["teacher_store_top_k"], outputs["num_labels"])
    folder = Path(hparams["teacher_store"])
    if isinstance(teacher, OutOfFoldTeacher):
        parts = [(member, folder / f"fold_{i}") for i, member in enumerate(teacher.members)]
    else:
        parts = [(teacher, folder)]
    return [(part, path, store_metadata(part, store_top_k, outputs)) for part, path in parts]


def check_teacher_store(teacher: nn.Module, hparams: Dict) -> None:
    """Refuse an existing complete store (or part of one) that this run cannot use (other
    settings, fewer labels per frame than ``top_k``, missing shards): called before the run's
    output folder is created, so a refused run leaves nothing behind."""
    for _, folder, expected in store_parts(teacher, hparams):
        if (folder / METADATA_FILE).is_file():
            TeacherStore(folder, expected, hparams["top_k"])


@contextmanager
def store_lock(folder: Path):
    """Hold a lock on the store folder itself (``flock`` on the directory: no file added, and
    the kernel frees it if its holder dies) for the block, on the main process; the other DDP
    processes wait at a barrier until it holds it. A second run dumping the same store at once
    waits for the first, then reads its store, instead of writing the same files."""
    descriptor = None
    if if_main_process():
        folder.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(folder, os.O_RDONLY)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            logger.info("Teacher store %s is in use by another run: waiting for it.", folder)
            fcntl.flock(descriptor, fcntl.LOCK_EX)
    ddp_barrier()
    try:
        yield
    finally:
        if descriptor is not None:
            fcntl.flock(descriptor, fcntl.LOCK_UN)
            os.close(descriptor)


def open_store(
    dataset, teacher: Teacher, folder: Path, expected: Dict, hparams: Dict, device: str
) -> "TeacherStore":
    """The store in ``folder`` for ``dataset``, dumped first by ``teacher`` if it is absent or
    partial; runs started at once on one store take turns (:func:`store_lock`)."""
    with store_lock(folder):
        if not (folder / METADATA_FILE).is_file():
            with preserved_random_state():  # a resumed run skips the dump: same numbers drawn
                dump_teacher_store(
                    teacher,
                    hparams["features"]["compute_features"],
                    dataset,
                    folder,
                    expected,
                    device=device,
                    utterances_per_shard=hparams["teacher_store_shard_size"],
                    batch_size=hparams["eval_dataloader_opts"].get("batch_size", 8),
                )
        store = TeacherStore(folder, expected, hparams["top_k"])
    store.check_covers(dataset.data_ids)
    return store


def attach_teacher_store(dataset, teacher: nn.Module, hparams: Dict, device: str) -> Dict:
    """Give ``dataset`` the items ``teacher_topk_ids`` and ``teacher_topk_log_probs`` (the
    teacher's ``top_k`` labels) from the store in ``hparams['teacher_store']``, dumping it first
    on ``device`` if it is absent or partial: ``teacher_store_top_k`` labels per frame (at most
    all), in shards of ``teacher_store_shard_size`` utterances split across DDP processes. For
    an :class:`~blend_modules.training.teacher.OutOfFoldTeacher` each fold's teacher writes the
    part of its fold's utterances (by their ``spk_id``), and each utterance is read from its
    fold's part.

    An existing store written with other settings is refused, never overwritten; runs started
    at once on one store take turns (:func:`store_lock`). Returns the store's metadata summary
    (bytes per frame, teacher confidence; frame-weighted over the parts).
    """
    parts = store_parts(teacher, hparams)
    if isinstance(teacher, OutOfFoldTeacher):
        fold_of_utterance = {
            utt_id: teacher.fold(utt_id, dataset.data[utt_id]["spk_id"])
            for utt_id in dataset.data_ids
        }
        part_of = {}
        for number, (member, folder, expected) in enumerate(parts):
            ids = {utt_id for utt_id, fold in fold_of_utterance.items() if fold == number}
            if ids:  # a transfer set may hold no speaker of a fold
                fold = dataset.filtered_sorted(
                    key_test={"id": lambda utt_id, ids=ids: utt_id in ids}
                )
                part_of[number] = open_store(fold, member, folder, expected, hparams, device)
        stores = list(part_of.values())
        store_of = {utt_id: part_of[fold] for utt_id, fold in fold_of_utterance.items()}
    else:
        ((member, folder, expected),) = parts
        stores = [open_store(dataset, member, folder, expected, hparams, device)]
        store_of = dict.fromkeys(dataset.data_ids, stores[0])
    frames = sum(store.metadata["frames"] for store in stores)
    summary = {"bytes_per_frame": stores[0].metadata["bytes_per_frame"], "frames": frames}
    for key in ("teacher_top1", "teacher_entropy"):
        summary[key] = (
            sum(store.metadata[key] * store.metadata["frames"] for store in stores) / frames
        )
    logger.info(
        "Teacher store %s: %d frames, %d bytes per frame; teacher mean top-1 %.3f, entropy %.3f nats.",
        hparams["teacher_store"],
        summary["frames"],
        summary["bytes_per_frame"],
        summary["teacher_top1"],
        summary["teacher_entropy"],
    )

    @takes("id")
    @provides("teacher_topk_ids", "teacher_topk_log_probs")
    def store_pipeline(utt_id):
        teacher_topk_ids, teacher_topk_log_probs = store_of[utt_id][utt_id]
        yield teacher_topk_ids
        yield teacher_topk_log_probs

    dataset.add_dynamic_item(store_pipeline)
    dataset.set_output_keys(
        [*dataset.pipeline.output_mapping, "teacher_topk_ids", "teacher_topk_log_probs"]
    )
    return summary

"""The teacher: loaded from its own training folder, run online, or dumped to a top-k store.

A teacher folder is what ``train_teacher.py`` writes: ``hyperparams.yaml`` (with ``features``,
``normalize`` and ``model``) and ``save/`` with checkpoints holding the recoverables ``model``
and ``normalizer``. Any architecture declared that way can teach; the student's script needs
no change.

The offline store keeps, per utterance (keyed by utterance ID, never by batch position), the
teacher's top-k label ids (int16/int32) and renormalised probabilities (float16), in numpy shards
that are memory-mapped on read, plus ``metadata.json`` recording k, T, the label count, the
teacher checkpoint, the feature settings and each shard's SHA-256. A store is only used by a run
asking for exactly those settings. Every file is written to a temporary name and renamed, and
``metadata.json`` last, so a killed dump never looks complete and resumes at its missing shards.
"""

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Tuple

import numpy as np
import torch
from hyperpyyaml import load_hyperpyyaml
from speechbrain.dataio.batch import PaddedBatch
from speechbrain.utils.data_pipeline import provides, takes
from speechbrain.utils.distributed import ddp_barrier, if_main_process
from torch.nn.utils.rnn import pad_sequence

from blend_modules.checkpoints import CompleteCheckpointer, preserved_random_state
from blend_modules.frames import frame_counts
from blend_modules.losses import teacher_confidence, teacher_topk

logger = logging.getLogger(__name__)

METADATA_FILE = "metadata.json"
PLAN_FILE = "dump_plan.json"
STORE_FORMAT = 2


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
    checkpointer = CompleteCheckpointer(
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


def shard_plan(num_utterances: int, utterances_per_shard: int) -> List[range]:
    """The dataset positions of each shard: consecutive runs of ``utterances_per_shard``
    utterances, so a resumed or distributed dump writes exactly the shards an uninterrupted one
    would."""
    return [
        range(start, min(start + utterances_per_shard, num_utterances))
        for start in range(0, num_utterances, utterances_per_shard)
    ]


def file_sha256(path: Path) -> str:
    """SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def write_atomically(path: Path, write: Callable) -> None:
    """Call ``write(stream)`` on a temporary file beside ``path``, then rename it to ``path``:
    a killed process leaves the old file or none, never half of one."""
    partial = path.with_name(path.name + ".partial")
    with open(partial, "wb") as stream:
        write(stream)
        stream.flush()
        os.fsync(stream.fileno())
    os.replace(partial, path)


def shard_files(folder: Path, name: str) -> Dict[str, Path]:
    """A shard's array files."""
    return {part: folder / f"{name}_{part}.npy" for part in ("ids", "probs")}


def verified_shard(folder: Path, name: str) -> Dict:
    """The index of a completely written shard (``<name>.json``, written after its arrays)
    whose arrays match their checksums, or None."""
    index_path = folder / f"{name}.json"
    if not index_path.is_file():
        return None
    index = json.loads(index_path.read_text())
    for part, path in shard_files(folder, name).items():
        if not path.is_file() or file_sha256(path) != index["sha256"][part]:
            return None
    return index


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
    """Run the teacher over the utterances at ``positions`` of ``dataset``; write the shard's
    arrays, then its index."""
    loader = torch.utils.data.DataLoader(
        torch.utils.data.Subset(dataset, positions),
        batch_size=batch_size,
        collate_fn=PaddedBatch,
    )
    num_labels = metadata["outputs"]["num_labels"]
    id_dtype = np.int16 if num_labels <= np.iinfo(np.int16).max else np.int32
    utterances, all_ids, all_probs, frames = {}, [], [], 0
    sums = {"top1": 0.0, "entropy": 0.0}
    for batch in loader:
        batch = batch.to(device)
        wavs, wav_lens = batch.sig
        lengths = frame_counts(wav_lens, wavs.shape[1], metadata["features"])
        logits = teacher(compute_features(wavs), lengths)
        top1, entropy, _ = teacher_confidence(logits, lengths)
        sums["top1"] += top1.item()
        sums["entropy"] += entropy.item()
        topk_ids, topk_probs = teacher_topk(logits, metadata["top_k"], metadata["temperature"])
        for utt_id, ids, probs, length in zip(batch.id, topk_ids, topk_probs, lengths.tolist()):
            utterances[utt_id] = [frames, length]
            all_ids.append(ids[:length].cpu().numpy().astype(id_dtype))
            all_probs.append(probs[:length].cpu().numpy().astype(np.float16))
            frames += length
    arrays = {"ids": np.concatenate(all_ids), "probs": np.concatenate(all_probs)}
    checksums = {}
    for part, path in shard_files(folder, name).items():
        write_atomically(path, lambda stream: np.save(stream, arrays[part]))
        checksums[part] = file_sha256(path)
    index = {"utterances": utterances, "frames": frames, "sha256": checksums, **sums}
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
    is written atomically (arrays, then an index with their SHA-256), so a dump killed midway
    resumes at the shards that are missing or fail their checksum. The main process writes
    ``metadata.json`` last: its presence means a complete store. Returns that metadata (adding
    per-utterance offsets, shard checksums, bytes per frame and the teacher's mean top-1
    probability and entropy).
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
        index_path = store_folder / f"{name}.json"  # written after the arrays were hashed
        if not index_path.is_file():
            raise RuntimeError(f"{index_path}: shard missing after the dump.")
        shard = json.loads(index_path.read_text())
        shards.append({"name": name, "sha256": shard["sha256"]})
        for utt_id, (start, length) in shard["utterances"].items():
            index[utt_id] = [number, start, length]
        for key in sums:
            sums[key] += shard[key]
    id_bytes = np.load(shard_files(store_folder, names[0])["ids"], mmap_mode="r").itemsize
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
    """Reads a store written by :func:`dump_teacher_store`, refusing mismatched settings and
    corrupt or truncated shards (checked against their SHA-256 when opened).

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
        for shard in self.metadata["shards"]:
            for part, path in shard_files(self.folder, shard["name"]).items():
                if not path.is_file() or file_sha256(path) != shard["sha256"][part]:
                    raise ValueError(
                        f"Teacher store shard {path} is missing, truncated or corrupt (SHA-256 "
                        f"differs from {metadata_path}). Delete it and {metadata_path}: the "
                        "next run rewrites only the missing shards."
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
            files = shard_files(self.folder, self.metadata["shards"][number]["name"])
            self.shards[number] = tuple(
                np.load(files[part], mmap_mode="r") for part in ("ids", "probs")
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
        in ``hparams['teacher_store']``, dumping it first if it is absent or partial (in shards of
    ``teacher_store_shard_size`` utterances, 2000 by default, split across DDP processes).

        An existing store written with other settings is refused, never overwritten.
        Returns the store's metadata summary (bytes per frame, teacher confidence).
    """
    folder = Path(hparams["teacher_store"])
    expected = store_metadata(
        teacher, hparams["top_k"], hparams["temperature"], hparams["targets"].outputs()
    )
    if not (folder / METADATA_FILE).is_file():
        with preserved_random_state():  # a resumed run skips the dump: draw the same numbers
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

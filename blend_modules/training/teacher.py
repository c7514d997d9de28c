"""Trained models loaded from their own training folders, to teach a student or join an
ensemble.

A teacher folder is what ``train_teacher.py`` writes: ``hyperparams.yaml`` (with ``features``,
``normalize`` and ``model``) and ``save/`` with checkpoints holding the recoverables ``model``
and ``normalizer``. Any architecture declared that way can teach; the student's script needs
no change. A teacher runs online (in each training step) or is dumped once to a top-k store
(:mod:`blend_modules.training.teacher_store`)."""

import inspect
import json
import logging
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from hyperpyyaml import load_hyperpyyaml
from torch import nn

from blend_modules.data.folds import read_folds, read_manifest
from blend_modules.data.frames import relative_lengths
from blend_modules.models.ensemble import PosteriorAverage
from blend_modules.training.blend_options import check_blend_options
from blend_modules.training.checkpoints import (
    OUTPUTS_FILE,
    SUMMARY_FILE,
    CompleteCheckpointer,
    preserved_random_state,
)

logger = logging.getLogger(__name__)


def feature_settings(features: Dict) -> Dict:
    """The scalar settings of a ``features`` hparams block (what must match between models)."""
    return {key: value for key, value in features.items() if isinstance(value, (int, float, str))}


class Teacher(torch.nn.Module):
    """A trained teacher: its own input normalisation followed by its model, run on padded
    batches (the models' outputs do not depend on batching, see :mod:`blend_modules.models.vgg`)."""

    def __init__(
        self,
        normalize: torch.nn.Module,
        model: torch.nn.Module,
        features: Dict,
        checkpoint: str,
        train_csv: str = None,
    ):
        super().__init__()
        self.normalize, self.model = normalize, model
        self.feature_settings = feature_settings(features)
        self.checkpoint = checkpoint
        self.train_csv = train_csv  # the manifest it trained on (out-of-fold checks)

    def forward(
        self, features: torch.Tensor, lengths: torch.Tensor, mask: torch.Tensor = None
    ) -> torch.Tensor:
        """Per-frame logits ``[batch, frames, labels]`` from unnormalised ``[batch, frames,
        features]`` and each utterance's number of real frames; a 0/1 ``mask`` of the features'
        shape (the student's SpecAugment masks) multiplies the normalised features."""
        relative = relative_lengths(lengths, features.shape[1])
        normalized = self.normalize(features, relative)
        if mask is not None:
            normalized = normalized * mask
        return self.model(normalized, relative)


def describe_outputs(outputs: Dict) -> str:
    """A short description of a targets' ``outputs()`` for error messages."""
    units = outputs.get("units")
    shown = f", units {units[:8]}{'...' if len(units) > 8 else ''}" if units else ""
    if "labels_sha256" in outputs:
        shown += f", label inventory SHA-256 {outputs['labels_sha256'][:12]}..."
    return f"{outputs['kind']} targets with {outputs['num_labels']} outputs{shown}"


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
    recorded = teacher_folder / OUTPUTS_FILE
    if recorded.is_file():  # what it trained on, even if its prepared folder changed since
        teacher_outputs = json.loads(recorded.read_text())
    else:  # a teacher trained before outputs were recorded
        teacher_targets.prepare_outputs()  # e.g. the tokenizer; not the teacher's decoding graph
        teacher_outputs = teacher_targets.outputs()
    if teacher_outputs != student_targets.outputs():
        raise ValueError(
            f"Teacher {teacher_folder} predicts other outputs than the student: "
            f"{describe_outputs(teacher_outputs)} against "
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
    # the checkpoint's name, not its path: a results folder may move
    teacher = Teacher(
        normalize,
        model,
        teacher_hparams["features"],
        checkpoint.path.name,
        teacher_hparams.get("train_csv"),
    )
    return teacher.eval()


def preparation(hparams: Dict) -> Dict:
    """A YAML's corpus preparation: its ``prepare`` callable and every argument, defaults
    included (a teacher's YAML written before an argument existed prepared with its default),
    or None without one."""
    prepare = hparams.get("prepare")
    if prepare is None:
        return None
    function = getattr(prepare, "func", prepare)
    arguments = dict(getattr(prepare, "keywords", {}))
    try:
        bound = inspect.signature(function).bind_partial(**arguments)
        bound.apply_defaults()
        arguments = dict(bound.arguments)
    except (TypeError, ValueError):  # no signature to read: the arguments as given
        pass
    return {"callable": f"{function.__module__}.{function.__qualname__}", **arguments}


def check_teacher_preparation(hparams: Dict) -> None:
    """Before a student prepares its corpus: refuse a preparation that would rewrite its
    teachers' (the same ``prepared_folder`` prepared with other options, e.g. other valid
    speakers: other labels and alignments under a trained teacher). Nothing for a hard-label
    student, nor for a teacher folder without ``hyperparams.yaml`` (:func:`load_teacher` names
    it later)."""
    if hparams["hard_weight"] == 1.0:
        return
    folders = hparams["teacher_folder"]
    student = preparation(hparams)
    for folder in folders if isinstance(folders, (list, tuple)) else [folders]:
        hparams_file = Path(folder) / "hyperparams.yaml"
        if not hparams_file.is_file():
            continue
        with open(hparams_file) as fin, preserved_random_state():  # the YAML reseeds on load
            teacher_hparams = load_hyperpyyaml(fin)
        shared = (
            Path(teacher_hparams["prepared_folder"]).resolve()
            == Path(hparams["prepared_folder"]).resolve()
        )
        teacher = preparation(teacher_hparams)
        if shared and teacher != student:
            differing = {
                key: (teacher.get(key), student.get(key))
                for key in sorted(set(teacher) | set(student))
                if teacher.get(key) != student.get(key)
            }
            raise ValueError(
                f"Teacher {folder} was prepared in {hparams['prepared_folder']} with other "
                f"options than this run's (key: (teacher, student)): {differing}. Preparing "
                "would rewrite the teacher's labels and alignments; nothing was changed. Use the "
                "teacher's corpus options, or another prepared_folder (and a teacher of it)."
            )


class EnsembleTeacher(PosteriorAverage):
    """Several trained models teaching as one: their posteriors averaged (model compression's
    classic case, an ensemble distilled into one model), with what a teacher store records
    of a teacher (the members' checkpoints, their shared features)."""

    def __init__(self, members: Sequence[Teacher]):
        super().__init__(members)
        self.feature_settings = members[0].feature_settings
        self.checkpoint = " + ".join(member.checkpoint for member in members)


class OutOfFoldTeacher(nn.Module):
    """Cross-fitted teachers: ``members[i]`` trained on every speaker fold but i
    (:mod:`blend_modules.data.folds`) and labels the utterances of fold i's speakers, so that
    every soft label is said of speech its teacher never heard. Offline only: the store holds
    one part per fold (:func:`blend_modules.training.teacher_store.attach_teacher_store`)."""

    def __init__(self, members: Sequence[Teacher], fold_of: Dict[str, int], folds_file: str):
        super().__init__()
        self.members = nn.ModuleList(members)
        self.fold_of, self.folds_file = fold_of, folds_file
        self.feature_settings = members[0].feature_settings
        self.checkpoint = " | ".join(member.checkpoint for member in members)

    def fold(self, utt_id: str, speaker: str) -> int:
        """The fold of an utterance's speaker; ``ValueError`` naming both if it has none."""
        if speaker not in self.fold_of:
            raise ValueError(
                f"Utterance {utt_id}: its speaker {speaker} is in no fold of {self.folds_file}; "
                "make the folds from the manifest the student trains on."
            )
        return self.fold_of[speaker]


def load_out_of_fold_teacher(folders: Sequence, folds_file, hparams: Dict) -> OutOfFoldTeacher:
    """The teachers of ``folders`` (one per fold of ``folds_file``, in fold order), each
    checked to have trained on no speaker of its own fold (its ``train_csv``)."""
    fold_of = read_folds(folds_file)
    num_folds = max(fold_of.values()) + 1
    if len(folders) != num_folds:
        raise ValueError(
            f"teacher_folds {folds_file} has {num_folds} folds but teacher_folder lists "
            f"{len(folders)} teachers: one per fold, teacher i trained without fold i."
        )
    members = [load_teacher(f, hparams["features"], hparams["targets"]) for f in folders]
    for number, (folder, member) in enumerate(zip(folders, members)):
        heard = {row["spk_id"] for row in read_manifest(member.train_csv)}
        overlap = sorted(speaker for speaker in heard if fold_of.get(speaker) == number)
        if overlap:
            raise ValueError(
                f"Teacher {folder} trained on {member.train_csv}, which holds {len(overlap)} "
                f"speaker(s) of fold {number} of {folds_file} (e.g. {overlap[0]}): it would "
                "label speech it has heard. Train it on train_without_fold_"
                f"{number}.csv."
            )
    return OutOfFoldTeacher(members, fold_of, str(folds_file)).eval()


def load_blending_teacher(hparams: Dict) -> Tuple[Optional[nn.Module], Dict]:
    """The teacher a student blends with (``teacher_folder``: one trained model's folder, or a
    list of them: an :class:`EnsembleTeacher`), its blending options checked first, and what the
    run's summary records of it; ``None`` for a hard-label student (``hard_weight: 1.0``, whose
    YAML need not have teacher settings at all). An ensemble teacher in offline mode needs a
    ``teacher_store`` of its own (the YAML's default lies in a single teacher's folder). With
    ``teacher_folds`` (a ``folds.json``), the listed folders are out-of-fold teachers instead
    (:class:`OutOfFoldTeacher`), offline only."""
    summary = {"hard_weight": hparams["hard_weight"]}
    if hparams["hard_weight"] == 1.0:
        return None, summary
    hparams.setdefault("soft_loss", "frames")  # the paper's; CTC YAMLs may choose another
    check_blend_options(
        hparams["hard_weight"],
        hparams["top_k"],
        hparams["targets"].num_labels,
        hparams["temperature"],
        hparams["teacher_mode"],
        hparams.get("teacher_store_top_k"),
        hparams["soft_loss"],
        getattr(hparams["targets"], "blank_index", None),
    )
    folders = hparams["teacher_folder"]
    folds_file = hparams.get("teacher_folds")
    if hparams.get("consistent_augmentation") and not (
        hparams["teacher_mode"] == "online" and hparams.get("spec_augment")
    ):
        raise ValueError(
            "consistent_augmentation needs teacher_mode: online and spec_augment: True: the "
            "teacher labels the student's masked input as it trains (a store holds labels of "
            "the clean input)."
        )
    if folds_file and hparams["teacher_mode"] != "offline":
        raise ValueError(
            "teacher_folds (out-of-fold teachers) works with teacher_mode: offline only: each "
            "fold's teacher labels its fold into the store once."
        )
    if isinstance(folders, (list, tuple)):
        store = str(hparams.get("teacher_store"))
        if hparams["teacher_mode"] == "offline" and str(list(folders)) in store:
            raise ValueError(
                f"teacher_store '{store}' is made from the list of teacher folders (an ensemble "
                "teacher): give its store a folder of its own, e.g. "
                "--teacher_store=results/ensemble_store."
            )
        if folds_file:
            teacher = load_out_of_fold_teacher(folders, folds_file, hparams)
        else:
            members = [load_teacher(f, hparams["features"], hparams["targets"]) for f in folders]
            teacher = EnsembleTeacher(members).eval()
    elif folds_file:
        raise ValueError(
            f"teacher_folds {folds_file} needs teacher_folder to list one teacher per fold."
        )
    else:
        teacher = load_teacher(folders, hparams["features"], hparams["targets"])
    summary.update(
        top_k=hparams["top_k"],
        temperature=hparams["temperature"],
        soft_loss=hparams["soft_loss"],
        teacher_mode=hparams["teacher_mode"],
        teacher=teacher.checkpoint,
    )
    return teacher, summary


def load_ensemble_members(hparams: Dict) -> Tuple[List[Teacher], Dict]:
    """The trained models of ``ensemble_members`` (their output folders, e.g. the teacher and
    the hard-label CNN of one seed) and what the ensemble's summary records: each member's
    checkpoint, and as ``train_time_s`` the members' training time together (when every
    member has a ``summary.json``)."""
    folders = [Path(folder) for folder in hparams["ensemble_members"]]
    members = [load_teacher(folder, hparams["features"], hparams["targets"]) for folder in folders]
    checkpoints = [f"{folder}: {member.checkpoint}" for folder, member in zip(folders, members)]
    summary = {"members": checkpoints}
    summaries = [folder / SUMMARY_FILE for folder in folders]
    if all(path.is_file() for path in summaries):
        seconds = sum(json.loads(path.read_text())["train_time_s"] for path in summaries)
        summary["train_time_s"] = round(seconds, 1)
    return members, summary

"""The recipes' entry points. Each recipe's ``train_teacher.py``, ``train_blend.py`` and
``export_loglikes.py`` calls one of these with its command line, so every corpus trains with
the same code and only its YAML (and data preparation) differs."""

import logging
from pathlib import Path
from typing import List

from blend_modules.alignments import read_alignments
from blend_modules.brains import StudentBrain, TeacherBrain
from blend_modules.data import check_manifest, dataio_prepare
from blend_modules.kaldi_export import export_loglikes, write_counts
from blend_modules.losses import check_blend_options
from blend_modules.priors import label_counts, log_priors
from blend_modules.recipe import (
    fit_and_test,
    load_hparams,
    prepare_experiment,
    start_output_folder,
)
from blend_modules.teacher import attach_teacher_store, load_teacher

logger = logging.getLogger(__name__)


def train_teacher(argv: List[str]) -> dict:
    """Train a model on hard targets (the teacher): ``hparams.yaml [--key=value ...]``."""
    experiment = prepare_experiment(argv)
    hparams, run_opts = experiment.hparams, experiment.run_opts
    datasets = dataio_prepare(hparams)
    start_output_folder(experiment)
    teacher_brain = TeacherBrain(
        modules=hparams["modules"],
        opt_class=hparams["opt_class"],
        hparams=hparams,
        run_opts=run_opts,
        checkpointer=hparams["checkpointer"],
    )
    return fit_and_test(teacher_brain, datasets, hparams)


def train_blend(argv: List[str]) -> dict:
    """Train a student on ``hard_weight · hard loss + (1 - hard_weight) · soft CE`` to the
    teacher's top-k at ``temperature`` (``hard_weight: 1.0``: hard labels only, no teacher).
    With ``teacher_mode: online`` the teacher runs in each training step; with ``offline`` its
    top-k posteriors are dumped once to ``teacher_store`` and read back by utterance ID."""
    experiment = prepare_experiment(argv)
    hparams, run_opts = experiment.hparams, experiment.run_opts
    blending = hparams["hard_weight"] != 1.0
    if blending:  # a hard-label baseline YAML need not have teacher settings at all
        check_blend_options(
            hparams["hard_weight"],
            hparams["top_k"],
            hparams["targets"].num_labels,
            hparams["temperature"],
            hparams["teacher_mode"],
            hparams.get("teacher_store_top_k"),
        )
    datasets = dataio_prepare(hparams)

    teacher, teacher_summary = None, {}
    if blending:
        teacher = load_teacher(hparams["teacher_folder"], hparams["features"], hparams["targets"])
        teacher_summary = {"teacher_mode": hparams["teacher_mode"], "teacher": teacher.checkpoint}
    start_output_folder(experiment)
    if blending and hparams["teacher_mode"] == "offline":
        device = run_opts.get("device", "cpu")
        teacher_summary.update(attach_teacher_store(datasets["train"], teacher, hparams, device))
        teacher = None

    student_brain = StudentBrain(
        modules=hparams["modules"],
        opt_class=hparams["opt_class"],
        hparams=hparams,
        run_opts=run_opts,
        checkpointer=hparams["checkpointer"],
        teacher=teacher,
    )
    return fit_and_test(student_brain, datasets, hparams, teacher_summary)


def export_for_kaldi(argv: List[str]) -> Path:
    """Write the trained model's pseudo-log-likelihoods for Kaldi's ``latgen-faster-mapped``.

    Takes the command line the model trained with. Its best checkpoint (in ``output_folder``)
    runs over each manifest of ``export_csv`` (name -> manifest), writing
    ``output_folder/kaldi/<name>/loglikes.{ark,scp}``; the priors are the label counts of the
    training alignments of the ``train_csv`` utterances, written as
    ``output_folder/kaldi/train_pdf.counts``. Nothing in the training folder is changed.
    """
    _, hparams, run_opts, _ = load_hparams(argv)
    targets, features = hparams["targets"], hparams["features"]
    if not hasattr(targets, "alignments"):
        raise ValueError("Exporting pseudo-log-likelihoods needs frame targets (alignments).")
    model = load_teacher(hparams["output_folder"], features, targets)
    train_utterances = check_manifest(hparams["train_csv"], features["sample_rate"])
    alignments = read_alignments(targets.alignments["train"], targets.num_labels)
    counts = label_counts(alignments, targets.num_labels, set(train_utterances) & set(alignments))
    kaldi_folder = Path(hparams["output_folder"]) / "kaldi"
    kaldi_folder.mkdir(parents=True, exist_ok=True)
    write_counts(kaldi_folder / "train_pdf.counts", counts)
    logger.info("Priors from %d frames; %d labels never seen.", counts.sum(), (counts == 0).sum())
    for name, manifest in dict(hparams["export_csv"]).items():
        segments = check_manifest(manifest, features["sample_rate"])
        export_loglikes(
            model,
            features["compute_features"],
            segments,
            log_priors(counts),
            kaldi_folder / name / "loglikes",
            run_opts.get("device", "cpu"),
        )
    return kaldi_folder

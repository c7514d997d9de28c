"""The recipes' entry points. Each recipe's ``train_teacher.py``, ``train_blend.py``,
``export_loglikes.py`` and ``decode_loglikes.py`` calls one of these with its command line, so
every corpus trains with the same code and only its YAML (and data preparation) differs."""

import csv
import json
import logging
from pathlib import Path
from typing import Dict, List

import kaldiio

from blend_modules.alignments import read_alignments
from blend_modules.brains import EnsembleBrain, StudentBrain, TeacherBrain
from blend_modules.data import check_manifest, dataio_prepare
from blend_modules.decoding import HybridWordErrors, WordDecoder, fix_acoustic_scale
from blend_modules.export import export_model
from blend_modules.inference import add_onnx_encoder
from blend_modules.kaldi_export import export_loglikes, write_counts
from blend_modules.kaldi_graph import write_ctm, write_text
from blend_modules.losses import check_blend_options
from blend_modules.models import PosteriorAverage
from blend_modules.priors import label_counts, log_priors
from blend_modules.recipe import (
    SUMMARY_FILE,
    fit_and_test,
    load_hparams,
    prepare_experiment,
    start_output_folder,
    test_and_summarize,
    write_summary,
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
    hparams.setdefault("soft_loss", "frames")  # the paper's; CTC YAMLs may choose another
    if blending:  # a hard-label baseline YAML need not have teacher settings at all
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
    datasets = dataio_prepare(hparams)

    teacher, teacher_summary = None, {"hard_weight": hparams["hard_weight"]}
    if blending:
        teacher = load_teacher(hparams["teacher_folder"], hparams["features"], hparams["targets"])
        teacher_summary.update(
            top_k=hparams["top_k"],
            temperature=hparams["temperature"],
            soft_loss=hparams["soft_loss"],
            teacher_mode=hparams["teacher_mode"],
            teacher=teacher.checkpoint,
        )
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


def evaluate_ensemble(argv: List[str]) -> dict:
    """Evaluate the simple ensemble the paper compares blending with: the average of trained
    models' posteriors (``ensemble_members``: their output folders, e.g. the teacher and the
    hard-label CNN of one seed), scored and decoded as each of them is (the acoustic scale
    chosen on valid). ``hparams.yaml [--key=value ...]`` as for training a student; writes
    ``summary.json`` and the test files to ``output_folder``, trains nothing. Its
    ``train_time_s`` is the members' together."""
    experiment = prepare_experiment(argv)
    hparams, run_opts = experiment.hparams, experiment.run_opts
    datasets = dataio_prepare(hparams)
    folders = [Path(folder) for folder in hparams["ensemble_members"]]
    members = [load_teacher(folder, hparams["features"], hparams["targets"]) for folder in folders]
    start_output_folder(experiment)
    brain = EnsembleBrain(
        modules={"model": PosteriorAverage(members)}, hparams=hparams, run_opts=run_opts
    )
    training = {}
    summaries = [folder / SUMMARY_FILE for folder in folders]
    if all(path.is_file() for path in summaries):
        seconds = sum(json.loads(path.read_text())["train_time_s"] for path in summaries)
        training["train_time_s"] = round(seconds, 1)
    members_summary = {
        "members": [f"{folder}: {member.checkpoint}" for folder, member in zip(folders, members)]
    }
    summary = test_and_summarize(brain, datasets, hparams, None, training, members_summary)
    write_summary(hparams, summary)
    return summary


def export_trained_model(argv: List[str]) -> Dict[str, Path]:
    """Export a trained model (best checkpoint, with its input normalisation) to TorchScript and
    ONNX in ``output_folder/export`` (:mod:`blend_modules.export`), each checked against
    PyTorch with onnxruntime; if the run has an inference folder, its interface (``HybridASR``
    or ``EncoderASR``) gets ``hyperparams_onnx.yaml`` to run on the ONNX graph. Takes the
    command line the model trained with."""
    _, hparams, _, _ = load_hparams(argv)
    hparams["targets"].prepare()  # CTC: the tokenizer, whose units are the outputs
    model = load_teacher(hparams["output_folder"], hparams["features"], hparams["targets"])
    folder = Path(hparams["output_folder"]) / "export"
    paths = export_model(model, folder, hparams["features"]["n_mels"])
    inference_folder = Path(hparams.get("inference_folder", ""))
    if (inference_folder / "hyperparams.yaml").is_file():  # its interface, on the ONNX graph
        paths["inference"] = add_onnx_encoder(
            inference_folder, paths["onnx"], hparams["features"], hparams["targets"]
        )
    return paths


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


def decode_exported(argv: List[str]) -> Dict:
    """Decode the pseudo-log-likelihoods ``export_for_kaldi`` wrote with a Kaldi system's graph
    (``kaldi_graph_folder``: ``HCLG.fst``, ``words.txt``; ``kaldi_model``: its ``final.mdl``),
    in Python: the acoustic scale is chosen on the ``decode_valid`` export from the
    ``acoustic_scales`` grid, then every other export is decoded at it and scored against its
    manifest's words (both mapped by ``scoring_filter``, e.g. the reference GLM). Writes, in
    ``output_folder/kaldi``: ``<name>/text`` (Kaldi text), ``<name>/ctm``,
    ``wer_<name>.txt`` and ``decode_summary.json``. Takes the command line the model trained
    with (plus the graph options)."""
    _, hparams, _, _ = load_hparams(argv)
    for key in ("kaldi_graph_folder", "kaldi_model"):
        if not hparams.get(key):
            raise ValueError(f"Decoding with a Kaldi graph needs --{key} (see README).")
    kaldi_folder = Path(hparams["output_folder"]) / "kaldi"
    decoder = WordDecoder.from_kaldi(
        hparams["kaldi_graph_folder"],
        hparams["kaldi_model"],
        hparams["acoustic_scales"],
        hparams["decode_beam"],
        hparams["decode_max_active"],
    )
    num_pdfs = int(decoder.input_labels.max()) + 1
    if num_pdfs != hparams["targets"].num_labels:
        raise ValueError(
            f"{hparams['kaldi_model']}: its transition model has {num_pdfs} pdfs, the model "
            f"was trained on {hparams['targets'].num_labels} labels: not the same pdf ids."
        )
    exports = dict(hparams["export_csv"])
    valid_name = hparams["decode_valid"]
    summary = {"graph": str(hparams["kaldi_graph_folder"]), "model": str(hparams["kaldi_model"])}
    frame_shift_s = hparams["features"]["hop_length"] / 1000
    for name in [valid_name] + [name for name in exports if name != valid_name]:
        errors = HybridWordErrors(decoder, scoring_filter=hparams.get("scoring_filter"))
        segments = read_exported(kaldi_folder / name / "loglikes.scp", exports[name], num_pdfs)
        for utt_id, (loglikes, words, _) in segments.items():
            errors.add(utt_id, loglikes, words)
        if name == valid_name:
            decoder.acoustic_scale = None  # decoded at every scale of the grid
            stats = errors.summarize()
            fix_acoustic_scale(decoder, stats)
        else:
            stats = errors.summarize()
            errors.write(kaldi_folder, name)
            write_text(kaldi_folder / name / "text", errors.hypotheses)
            sides = {utt_id: side for utt_id, (_, _, side) in segments.items()}
            write_ctm(kaldi_folder / name / "ctm", errors.hypotheses, sides, frame_shift_s)
        summary.update({f"{name}_{key}": value for key, value in stats.items()})
        logger.info("%s: %s", name, {k: v for k, v in stats.items() if "at_scale" not in k})
    (kaldi_folder / "decode_summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def read_exported(scp, manifest, num_pdfs: int) -> Dict:
    """Utterance ID -> (pseudo-log-likelihoods, reference words, (recording, channel, start))
    of an export and its manifest (a side ``<recording>-<channel>`` as Kaldi's
    ``reco2file_and_channel``, else channel 1); ``ValueError`` naming the file for a missing
    export, utterance or a pdf count that is not the graph's."""
    if not Path(scp).is_file():
        raise FileNotFoundError(f"{scp}: no export; run export_loglikes.py first.")
    loglikes = kaldiio.load_scp(str(scp))
    segments = {}
    with open(manifest, newline="") as csv_file:
        for row in csv.DictReader(csv_file):
            if row["ID"] not in loglikes:
                raise ValueError(f"{scp}: no pseudo-log-likelihoods of {row['ID']} ({manifest}).")
            matrix = loglikes[row["ID"]]
            if matrix.shape[1] != num_pdfs:
                raise ValueError(
                    f"{scp}: {row['ID']} has {matrix.shape[1]} pdfs, the graph's model {num_pdfs}."
                )
            recording, _, channel = row["spk_id"].rpartition("-")
            side = (recording, channel) if recording else (row["spk_id"], "1")
            segments[row["ID"]] = (matrix, row["words"].split(), (*side, float(row["start"])))
    return segments

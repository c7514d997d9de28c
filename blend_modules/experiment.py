"""The steps of an entry script around its Brain, in the order a recipe's ``train_*.py`` takes
them: load the YAML (:func:`load_hparams`), prepare the corpus and targets (:func:`prepare_data`),
start the output folder once every check has passed (:func:`start_output_folder`), then, after
``Brain.fit``, test the best checkpoint and write the run's summary and inference folder
(:func:`finish_training`); :func:`test_and_summarize` alone for models that are not trained
(the ensemble)."""

import gc
import json
import logging
import shutil
import sys
import time
from pathlib import Path
from typing import Dict, List, NamedTuple

import speechbrain as sb
import torch
from speechbrain.utils.distributed import run_on_main

from blend_modules.data.atomic_files import write_atomically
from blend_modules.data.hparams import load_hparams_file, write_resolved_hparams
from blend_modules.deploy.inference import write_inference_folder
from blend_modules.hybrid.scoring import fix_acoustic_scale
from blend_modules.training.checkpoints import OUTPUTS_FILE, SUMMARY_FILE
from blend_modules.training.devices import check_precisions, run_device

logger = logging.getLogger(__name__)


class Experiment(NamedTuple):
    """A run as its command line gave it, with the device its Brain will use."""

    hparams_file: str
    hparams: Dict
    run_opts: Dict
    overrides: str
    device: str


def load_hparams(argv: List[str]) -> Experiment:
    """Parse ``hparams.yaml --key=value ...`` (joining the DDP process group when started by
    ``torchrun``), load the YAML and resolve the run's device; a precision that device cannot
    run is refused here. Nothing is written."""
    # log to the console until the output folder (and SpeechBrain's log file) exists
    logging.basicConfig(level=logging.INFO, format="%(name)s - %(message)s", stream=sys.stdout)
    hparams_file, run_opts, overrides = sb.parse_arguments(argv)
    sb.utils.distributed.ddp_init_group(run_opts)  # under torchrun: join the process group
    hparams = load_hparams_file(hparams_file, overrides)
    device = run_device(run_opts, hparams)
    check_precisions(run_opts, hparams, device)
    return Experiment(hparams_file, hparams, run_opts, overrides, device)


def prepare_data(experiment: Experiment) -> None:
    """Prepare the data, writing nothing into ``output_folder`` yet.

    The corpus preparation is the YAML's optional ``prepare`` (a ``!name:`` callable with its
    arguments; absent or null when the manifests already exist), run once on the main process,
    so the scripts do not depend on the corpus; then the ``targets`` prepare what they need
    (e.g. train the tokenizer).
    """
    hparams = experiment.hparams
    if hparams.get("prepare") is not None:
        run_on_main(hparams["prepare"])
    hparams["targets"].prepare()
    if hparams["num_labels"] != hparams["targets"].num_labels:
        raise ValueError(
            f"num_labels is {hparams['num_labels']} in {experiment.hparams_file}, but the targets "
            f"have {hparams['targets'].num_labels} outputs (e.g. the tokenizer's vocabulary)."
        )


def start_output_folder(experiment: Experiment) -> None:
    """Create the output folder, once every check has passed: its ``hyperparams.yaml``, the
    entry script, SpeechBrain's log, and ``outputs.json``: what the targets' outputs are (the
    label inventory's SHA-256, the CTC units), recorded when the run starts, so that a teacher
    is checked against what it trained on even if its prepared folder changes later. A folder
    that holds checkpoints of another model (e.g. a finished run rerun with other outputs), or
    whose run started on other outputs, is refused before anything in it changes."""
    hparams = experiment.hparams
    output_folder = Path(hparams["output_folder"])
    try:
        hparams["checkpointer"].recover_if_possible()  # what Brain.fit would resume from
    except (RuntimeError, KeyError) as error:
        raise ValueError(
            f"{output_folder} holds checkpoints of another model than "
            f"{experiment.hparams_file} with these overrides builds; nothing was changed. Use "
            f"another output_folder. ({error})"
        ) from error
    outputs, recorded = hparams["targets"].outputs(), output_folder / OUTPUTS_FILE
    if recorded.is_file() and json.loads(recorded.read_text()) != outputs:
        raise ValueError(
            f"{output_folder} started on other targets ({recorded.read_text().strip()}) than "
            f"this run's ({json.dumps(outputs)}): its prepared data changed since; nothing was "
            "changed. Use another output_folder."
        )
    if sb.utils.distributed.if_main_process():
        output_folder.mkdir(parents=True, exist_ok=True)
        text = json.dumps(outputs).encode()
        write_atomically(recorded, lambda stream: stream.write(text))
        write_resolved_hparams(
            experiment.hparams_file, experiment.overrides, output_folder / "hyperparams.yaml"
        )
        shutil.copy(sys.argv[0], output_folder)
    sb.create_experiment_directory(experiment_directory=hparams["output_folder"])


def count_parameters(module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def finish_training(
    brain: sb.Brain, datasets: Dict, hparams: Dict, extra_summary: Dict = None
) -> Dict:
    """After ``brain.fit``: test the best checkpoint (lowest valid error of the targets: frame
    error or WER) with :func:`test_and_summarize`, write the inference folder and
    ``summary.json`` (main process), and leave the DDP process group. The summary also has the
    training time (all epochs, also those of an interrupted earlier run), the best epoch, the
    best model's fit of the training set in eval mode (``train_eval_frame_acc`` ...: the honest
    train-valid gap; ``report_train_fit: False`` in the YAML skips it) and the per-epoch
    history."""
    error_key = hparams["targets"].error_key
    history = list(brain.history.epochs)  # evaluate() reloads the best epoch's checkpoint
    best = brain.checkpointer.find_checkpoint(min_key=error_key)
    training = {
        "train_time_s": round(brain.history.train_seconds, 1),
        "best_epoch": best.meta["epoch"],
    }
    best_valid = next(epoch["valid"] for epoch in history if epoch["epoch"] == best.meta["epoch"])
    train_fit = {}
    if hparams.get("report_train_fit", True):
        brain.checkpointer.recover_if_possible(min_key=error_key)  # the model that is tested
        fit = brain.evaluate_fit(datasets["train"], hparams["eval_dataloader_opts"])
        train_fit = {f"train_eval_{key}": value for key, value in fit.items()}
    summary = test_and_summarize(
        brain,
        datasets,
        hparams,
        best_valid,
        training,
        {**train_fit, "history": history, **(extra_summary or {})},
    )
    if sb.utils.distributed.if_main_process():
        if "inference_folder" in hparams:
            inference_folder = write_inference_folder(hparams, best, hparams["inference_folder"])
            if inference_folder is not None:
                summary["inference_folder"] = str(inference_folder)
        write_summary(hparams, summary)
    end_distributed(brain)
    return summary


def test_and_summarize(
    brain: sb.Brain,
    datasets: Dict,
    hparams: Dict,
    valid_stats: Dict = None,
    training: Dict = None,
    extra: Dict = None,
) -> Dict:
    """Test ``brain``'s model (its best checkpoint, if it has a checkpointer) on each test set;
    returns the run's summary: valid and test metrics, parameter count and test time, with
    ``training`` facts after the parameter count and ``extra`` last.
    ``valid_stats`` are those of training's validation; without them valid is evaluated here.

    Frame targets with a decoder are also scored in words: valid is decoded at every acoustic
    scale and word insertion penalty of the decoder's grid (its WER keys join
    ``valid_stats``), the best pair on valid is kept (``valid_acoustic_scale``,
    ``valid_word_insertion_penalty``) and the test sets are decoded with it, unchanged.
    """
    evaluate_options = {"test_loader_kwargs": hparams["eval_dataloader_opts"]}
    if brain.checkpointer is not None:
        evaluate_options["min_key"] = hparams["targets"].error_key
    decoder = getattr(hparams["targets"], "decoder", None)
    if decoder is not None or valid_stats is None:
        if decoder is not None:
            decoder.acoustic_scale = None  # valid is decoded at every scale of the grid
        evaluated = brain.evaluate_test_sets({"valid": datasets["valid"]}, **evaluate_options)
        evaluated = evaluated["valid"]
        if valid_stats is not None:  # training's validation, plus the words it did not decode
            chosen = ("acoustic_scale", "word_insertion_penalty")
            evaluated = {k: v for k, v in evaluated.items() if "WER" in k or k in chosen}
        valid_stats = {**(valid_stats or {}), **evaluated}
        if decoder is not None:
            valid_stats.update(fix_acoustic_scale(decoder, valid_stats))
    start = time.perf_counter()
    test_stats = brain.evaluate_test_sets(datasets["test"], **evaluate_options)
    test_seconds = time.perf_counter() - start  # network, data and (hybrid) decoding
    summary = {
        "model": hparams["model_name"],
        "seed": hparams["seed"],
        "parameters": count_parameters(brain.modules.model),
        **(training or {}),
        "test_time_s": round(test_seconds, 1),
        **{f"valid_{key}": value for key, value in valid_stats.items()},
        **{
            # one test set keeps plain test_<metric> keys; several are told apart by name
            f"test_{key}" if name == "test" else f"test_{name}_{key}": value
            for name, stats in test_stats.items()
            for key, value in stats.items()
        },
        **(extra or {}),
    }
    return summary


def write_summary(hparams: Dict, summary: Dict) -> None:
    """``summary.json`` in the run's output folder (written last: a run with one is done)."""
    path = Path(hparams["output_folder"]) / SUMMARY_FILE
    path.write_text(json.dumps(summary, indent=2))
    logger.info("Wrote %s", path)


def end_distributed(brain: sb.Brain) -> None:
    """Under DDP: wait until every process is done (the main process writes the summary and
    inference folder last), then close the process group, so that no process exits while
    another still uses it. ``brain``'s modules are unwrapped from DDP first: a DDP wrapper
    keeps the process group alive, and one freed only at interpreter exit (the Brain sits in
    reference cycles) aborted a process there ("terminate called without an active exception",
    1 test run in 6)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        sb.utils.distributed.ddp_barrier()
        for name, module in brain.modules.items():
            if isinstance(module, torch.nn.parallel.DistributedDataParallel):
                brain.modules[name] = module.module
        gc.collect()  # the wrappers, with their references to the group, go now
        torch.distributed.destroy_process_group()

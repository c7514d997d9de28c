"""What every entry script does around its Brain: set up the experiment, fit, test, summarise."""

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

from blend_modules.data import train_loader_kwargs
from blend_modules.decoding import fix_acoustic_scale
from blend_modules.hparams import load_hparams_file, write_resolved_hparams
from blend_modules.inference import write_inference_folder

logger = logging.getLogger(__name__)

SUMMARY_FILE = "summary.json"


class Experiment(NamedTuple):
    """A run as its command line gave it."""

    hparams_file: str
    hparams: Dict
    run_opts: Dict
    overrides: str


def load_hparams(argv: List[str]) -> Experiment:
    """Parse ``hparams.yaml --key=value ...`` (joining the DDP process group when started by
    ``torchrun``) and load the YAML; nothing is written."""
    # log to the console until the output folder (and SpeechBrain's log file) exists
    logging.basicConfig(level=logging.INFO, format="%(name)s - %(message)s", stream=sys.stdout)
    hparams_file, run_opts, overrides = sb.parse_arguments(argv)
    sb.utils.distributed.ddp_init_group(run_opts)  # under torchrun: join the process group
    return Experiment(hparams_file, load_hparams_file(hparams_file, overrides), run_opts, overrides)


def prepare_experiment(argv: List[str]) -> Experiment:
    """Load the hparams and prepare the data, writing nothing into ``output_folder`` yet.

    The corpus preparation is the YAML's optional ``prepare`` (a ``!name:`` callable with its
    arguments; absent or null when the manifests already exist), run once on the main process,
    so the scripts do not depend on the corpus; then the ``targets`` prepare what they need
    (e.g. train the tokenizer).
    """
    experiment = load_hparams(argv)
    hparams = experiment.hparams
    if hparams.get("prepare") is not None:
        run_on_main(hparams["prepare"])
    hparams["targets"].prepare()
    if hparams["num_labels"] != hparams["targets"].num_labels:
        raise ValueError(
            f"num_labels is {hparams['num_labels']} in {experiment.hparams_file}, but the targets "
            f"have {hparams['targets'].num_labels} outputs (e.g. the tokenizer's vocabulary)."
        )
    return experiment


def start_output_folder(experiment: Experiment) -> None:
    """Create the output folder, once every check has passed: its ``hyperparams.yaml``, the
    entry script, SpeechBrain's log. A folder that holds checkpoints of another model (e.g. a
    finished run rerun with other outputs) is refused before anything in it changes."""
    hparams = experiment.hparams
    try:
        hparams["checkpointer"].recover_if_possible()  # what Brain.fit would resume from
    except (RuntimeError, KeyError) as error:
        raise ValueError(
            f"{hparams['output_folder']} holds checkpoints of another model than "
            f"{experiment.hparams_file} with these overrides builds; nothing was changed. Use "
            f"another output_folder. ({error})"
        ) from error
    if sb.utils.distributed.if_main_process():
        output_folder = Path(hparams["output_folder"])
        output_folder.mkdir(parents=True, exist_ok=True)
        write_resolved_hparams(
            experiment.hparams_file, experiment.overrides, output_folder / "hyperparams.yaml"
        )
        shutil.copy(sys.argv[0], output_folder)
    sb.create_experiment_directory(experiment_directory=hparams["output_folder"])


def count_parameters(module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def fit_and_test(
    brain: sb.Brain, datasets: Dict, hparams: Dict, extra_summary: Dict = None
) -> Dict:
    """Train with validation, test the best checkpoint (lowest valid error of the targets:
    frame error or WER) on each test set, and write ``summary.json`` in the output folder:
    valid and test metrics, parameter count, training time (all epochs, also those of an
    interrupted earlier run) and per-epoch history.

    Frame targets with a decoder are also scored in words: the best checkpoint decodes valid
    at every acoustic scale of the decoder's grid, the best scale on valid is kept
    (``valid_acoustic_scale``) and the test sets are decoded at it, unchanged.
    """
    error_key = hparams["targets"].error_key
    brain.fit(
        brain.hparams.epoch_counter,
        datasets["train"],
        datasets["valid"],
        train_loader_kwargs=train_loader_kwargs(datasets["train"], hparams),
        valid_loader_kwargs=hparams["eval_dataloader_opts"],
    )
    history = list(brain.history.epochs)  # evaluate() reloads the best epoch's checkpoint
    train_seconds = brain.history.train_seconds
    evaluate_options = {"min_key": error_key, "test_loader_kwargs": hparams["eval_dataloader_opts"]}
    decoder = getattr(hparams["targets"], "decoder", None)
    decoding = {}  # hybrid WER: the acoustic scale is chosen on valid, then fixed for test
    if decoder is not None:
        decoding = choose_acoustic_scale(brain, datasets["valid"], decoder, evaluate_options)
    start = time.perf_counter()
    test_stats = brain.evaluate_test_sets(datasets["test"], **evaluate_options)
    test_seconds = time.perf_counter() - start  # network, data and (hybrid) decoding
    best = brain.checkpointer.find_checkpoint(min_key=error_key)
    best_valid = dict(
        next(epoch["valid"] for epoch in history if epoch["epoch"] == best.meta["epoch"])
    )
    for key, value in decoding.items():  # WER, its groups and grid, the scale
        if "WER" in key or key == "acoustic_scale":
            best_valid[key] = value
    summary = {
        "model": hparams["model_name"],
        "seed": hparams["seed"],
        "parameters": count_parameters(brain.modules.model),
        "train_time_s": round(train_seconds, 1),
        "test_time_s": round(test_seconds, 1),
        "best_epoch": best.meta["epoch"],
        **{f"valid_{key}": value for key, value in best_valid.items()},
        **{
            # one test set keeps plain test_<metric> keys; several are told apart by name
            f"test_{key}" if name == "test" else f"test_{name}_{key}": value
            for name, stats in test_stats.items()
            for key, value in stats.items()
        },
        "history": history,
        **(extra_summary or {}),
    }
    if sb.utils.distributed.if_main_process():
        if "inference_folder" in hparams:
            inference_folder = write_inference_folder(hparams, best, hparams["inference_folder"])
            if inference_folder is not None:
                summary["inference_folder"] = str(inference_folder)
        path = Path(hparams["output_folder"]) / SUMMARY_FILE
        path.write_text(json.dumps(summary, indent=2))
        logger.info("Wrote %s", path)
    end_distributed()
    return summary


def choose_acoustic_scale(brain: sb.Brain, valid, decoder, evaluate_options: Dict) -> Dict:
    """Decode ``valid`` with the best checkpoint at every acoustic scale of the decoder's grid
    and fix the decoder's scale to the best; returns valid's decoding stats."""
    decoder.acoustic_scale = None
    stats = brain.evaluate_test_sets({"valid": valid}, **evaluate_options)["valid"]
    fix_acoustic_scale(decoder, stats)
    return stats


def end_distributed() -> None:
    """Under DDP: wait until every process is done (the main process writes the summary and
    inference folder last), then close the process group, so that no process exits while
    another still uses it (once, a process aborted at exit, "terminate called without an
    active exception", while the main process was still writing)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        sb.utils.distributed.ddp_barrier()
        torch.distributed.destroy_process_group()

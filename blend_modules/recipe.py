"""What every entry script does around its Brain: set up the experiment, fit, test, summarise."""

import json
import logging
import shutil
import sys
from pathlib import Path
from typing import Dict, List, Tuple

import speechbrain as sb
from hyperpyyaml import load_hyperpyyaml
from speechbrain.utils.distributed import run_on_main

from blend_modules.data import train_loader_kwargs
from blend_modules.inference import write_inference_folder

logger = logging.getLogger(__name__)

SUMMARY_FILE = "summary.json"


def load_hparams(argv: List[str]) -> Tuple[str, Dict, Dict, str]:
    """Parse ``hparams.yaml --key=value ...`` (joining the DDP process group when started by
    ``torchrun``): the YAML path, its hparams, run options and overrides."""
    hparams_file, run_opts, overrides = sb.parse_arguments(argv)
    sb.utils.distributed.ddp_init_group(run_opts)  # under torchrun: join the process group
    with open(hparams_file, encoding="utf-8") as fin:
        hparams = load_hyperpyyaml(fin, overrides)
    return hparams_file, hparams, run_opts, overrides


def setup_experiment(argv: List[str]) -> Tuple[Dict, Dict]:
    """Parse ``hparams.yaml --key=value ...``, create the output folder, run data preparation.

    The corpus preparation is the YAML's ``prepare`` (a ``!name:`` callable with its arguments),
    run once on the main process, so the scripts do not depend on the corpus; then the
    ``targets`` prepare what they need (e.g. train the tokenizer).
    """
    hparams_file, hparams, run_opts, overrides = load_hparams(argv)
    sb.create_experiment_directory(
        experiment_directory=hparams["output_folder"],
        hyperparams_to_save=hparams_file,
        overrides=overrides,
    )
    if sb.utils.distributed.if_main_process():  # SpeechBrain saved this helper; keep the script too
        shutil.copy(sys.argv[0], hparams["output_folder"])
    run_on_main(hparams["prepare"])
    hparams["targets"].prepare()
    if hparams["num_labels"] != hparams["targets"].num_labels:
        raise ValueError(
            f"num_labels is {hparams['num_labels']} in {hparams_file}, but the targets have "
            f"{hparams['targets'].num_labels} outputs (e.g. the tokenizer's vocabulary)."
        )
    return hparams, run_opts


def count_parameters(module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def fit_and_test(
    brain: sb.Brain, datasets: Dict, hparams: Dict, extra_summary: Dict = None
) -> Dict:
    """Train with validation, test the best checkpoint (lowest valid error of the targets:
    frame error or WER) on each test set, and write ``summary.json`` in the output folder:
    valid and test metrics, parameter count, training time (all epochs, also those of an
    interrupted earlier run) and per-epoch history."""
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
    test_stats = brain.evaluate_test_sets(
        datasets["test"], min_key=error_key, test_loader_kwargs=hparams["eval_dataloader_opts"]
    )
    best = brain.checkpointer.find_checkpoint(min_key=error_key)
    best_valid = next(epoch["valid"] for epoch in history if epoch["epoch"] == best.meta["epoch"])
    summary = {
        "model": hparams["model_name"],
        "seed": hparams["seed"],
        "parameters": count_parameters(brain.modules.model),
        "train_time_s": round(train_seconds, 1),
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
            summary["inference_folder"] = str(
                write_inference_folder(hparams, best, hparams["inference_folder"])
            )
        path = Path(hparams["output_folder"]) / SUMMARY_FILE
        path.write_text(json.dumps(summary, indent=2))
        logger.info("Wrote %s", path)
    return summary

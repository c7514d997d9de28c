#!/usr/bin/env python3
"""What the offline teacher store costs: dumping it in padded batches against one utterance at a
time, its bytes per frame, and a blended training epoch that reads it against a hard-label one.

Run from a recipe folder once its teacher has trained (e.g. after ``bash run_demo.sh``), with
overrides of ``hparams/cnn_blend.yaml`` if needed:

    python ../../../benchmarks/teacher_store.py [--utterances 200] [--rounds 3] [--key=value ...]

The dumps go to temporary folders (the recipe's store is not touched), over the first
``--utterances`` training utterances, batch 1 and the recipe's evaluation batch size
interleaved. The epochs are whole training epochs (training and validation) of
``train_blend.py`` in fresh processes and temporary output folders: ``cnn.yaml`` (hard labels)
and ``cnn_blend.yaml`` (offline store, the recipe's teacher and store), ``--rounds`` each,
interleaved. Prints JSON. Run it on an idle machine.
"""

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional

from blend_modules.data.datasets import dataio_prepare
from blend_modules.experiment import load_hparams
from blend_modules.training.teacher import load_teacher
from blend_modules.training.teacher_store import dump_teacher_store, store_metadata


def dump_speed(
    hparams, utterances: Optional[int], batch_size: int, folder: Path, device: str = "cpu"
) -> dict:
    """Frames/s of dumping the teacher's store over the first ``utterances`` training
    utterances (None: all) in batches of ``batch_size`` on ``device``, and the store's bytes
    per frame (also used by benchmarks/gpu_check.py)."""
    targets = hparams["targets"]
    teacher = load_teacher(hparams["teacher_folder"], hparams["features"], targets).to(device)
    train = dataio_prepare(hparams)["train"].filtered_sorted(select_n=utterances)
    store_top_k = min(hparams["teacher_store_top_k"], targets.outputs()["num_labels"])
    start = time.perf_counter()
    metadata = dump_teacher_store(
        teacher,
        hparams["features"]["compute_features"].to(device),
        train,
        folder,
        store_metadata(teacher, store_top_k, targets.outputs()),
        device=device,
        batch_size=batch_size,
    )
    seconds = time.perf_counter() - start
    return {
        "frames_per_s": metadata["frames"] / seconds,
        "bytes_per_frame": metadata["bytes_per_frame"],
    }


def epoch_seconds(yaml: str, overrides, folder: Path) -> float:
    """Wall time of one training epoch (with its validation) of ``train_blend.py``."""
    command = [sys.executable, "train_blend.py", f"hparams/{yaml}", "--number_of_epochs=1"]
    command += [f"--output_folder={folder}", *overrides]
    subprocess.run(command, check=True, capture_output=True)
    summary = json.loads((folder / "summary.json").read_text())
    return summary["history"][0]["time_s"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--utterances", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    args, overrides = parser.parse_known_args()
    _, hparams, _, _ = load_hparams(["hparams/cnn_blend.yaml", *overrides])
    hparams["targets"].prepare()
    batched = hparams["eval_dataloader_opts"].get("batch_size", 8)
    results = {"dump": {}, "epoch_s": {}}
    with tempfile.TemporaryDirectory() as workdir:
        for round_number in range(args.rounds):
            for batch_size in (1, batched):
                folder = Path(workdir, f"store_{batch_size}_{round_number}")
                measured = dump_speed(hparams, args.utterances, batch_size, folder)
                results["dump"].setdefault(batch_size, []).append(measured["frames_per_s"])
                results["bytes_per_frame"] = measured["bytes_per_frame"]
            for yaml in ("cnn.yaml", "cnn_blend.yaml"):
                folder = Path(workdir, f"{yaml}_{round_number}")
                seconds = epoch_seconds(yaml, overrides, folder)
                results["epoch_s"].setdefault(yaml, []).append(seconds)
    medians = {key: statistics.median(values) for key, values in results["dump"].items()}
    results["dump_speedup_batched_over_1"] = medians[batched] / medians[1]
    epochs = {key: statistics.median(values) for key, values in results["epoch_s"].items()}
    results["blended_over_hard_epoch"] = epochs["cnn_blend.yaml"] / epochs["cnn.yaml"]
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    sys.path.insert(0, str(Path.cwd()))  # the recipe's own modules (its data preparation)
    main()

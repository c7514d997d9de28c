"""Results tables from run summaries: ``python -m blend_modules.report RESULTS_FOLDER``
(every ``<model>/<seed>/summary.json`` below it).

Prints one row per run, then, where a model has several seeds, its mean and standard deviation
and the blended-minus-hard difference of test frame accuracy.
"""

import json
import statistics
import sys
from collections import defaultdict
from pathlib import Path
from typing import List


def results_table(results_folder: str) -> str:
    """Markdown tables of the runs whose ``summary.json`` files lie in ``results_folder``."""
    summary_files = sorted(Path(results_folder).glob("*/*/summary.json"))
    if not summary_files:
        raise FileNotFoundError(f"No */*/summary.json under {results_folder}.")
    summaries = [json.loads(path.read_text()) for path in summary_files]
    lines = [
        "| model | seed | params | valid frame acc | test frame acc | train time (s) |",
        "|---|---|---|---|---|---|",
    ]
    for s in summaries:
        lines.append(
            f"| {s['model']} | {s['seed']} | {s['parameters']:,} | "
            f"{100 * s['valid_frame_acc']:.2f}% | {100 * s['test_frame_acc']:.2f}% | "
            f"{s['train_time_s']:.0f} |"
        )
    by_model = defaultdict(dict)
    for s in summaries:
        by_model[s["model"]][s["seed"]] = s
    if any(len(runs) > 1 for runs in by_model.values()):
        lines += ["", "| model | seeds | valid mean ± sd | test mean ± sd |", "|---|---|---|---|"]
        for model, runs in by_model.items():
            lines.append(
                f"| {model} | {len(runs)} | {mean_sd([r['valid_frame_acc'] for r in runs.values()])} "
                f"| {mean_sd([r['test_frame_acc'] for r in runs.values()])} |"
            )
    if "cnn" in by_model and "cnn_blend" in by_model:
        seeds = sorted(set(by_model["cnn"]) & set(by_model["cnn_blend"]))
        for split in ("valid", "test"):
            gains = [
                by_model["cnn_blend"][seed][f"{split}_frame_acc"]
                - by_model["cnn"][seed][f"{split}_frame_acc"]
                for seed in seeds
            ]
            lines.append(f"\nblended - hard, {split} frame acc over seeds {seeds}: {mean_sd(gains)} points")
    return "\n".join(lines)


def mean_sd(values: List[float]) -> str:
    """``mean ± sd`` in percentage points (sd only with two or more values)."""
    mean = 100 * statistics.mean(values)
    if len(values) < 2:
        return f"{mean:.2f}"
    return f"{mean:.2f} ± {100 * statistics.stdev(values):.2f}"


if __name__ == "__main__":
    print(results_table(sys.argv[1]))

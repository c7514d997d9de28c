"""Results tables from run summaries: ``python -m blend_modules.analysis.report RESULTS_FOLDER``
(every ``<model>/<seed>/summary.json`` below it).

Prints one row per run, then, where a model has several seeds, its mean and standard deviation,
and the blended-minus-hard difference of the main metric (frame accuracy, or WER for CTC).
"""

import json
import statistics
import sys
from collections import defaultdict
from pathlib import Path
from typing import Dict, List, Sequence, Tuple


def metric_columns(summary: Dict) -> List[str]:
    """The summary keys shown for a run: frame accuracy (and WER where the run decoded to
    words), or WER and CER for CTC targets; then the test metrics per group where the run broke
    them down (``test_breakdown``). Frame targets: first the training set's frame accuracy in
    eval mode where the summary has it (the train-valid gap)."""
    if "test_CER" in summary:
        columns, by_group = ["valid_WER", "test_WER", "test_CER"], ("test_WER_",)
    elif "test_WER" in summary:
        columns = ["valid_frame_acc", "test_frame_acc", "valid_WER", "test_WER"]
        by_group = ("test_frame_acc_", "test_WER_")
    else:
        columns, by_group = ["valid_frame_acc", "test_frame_acc"], ("test_frame_acc_",)
    if "train_eval_frame_acc" in summary:  # the best model's fit of its training set
        columns = ["train_eval_frame_acc", *columns]
    return columns + [
        key for prefix in by_group for key in sorted(summary) if key.startswith(prefix)
    ]


def percent(summary: Dict, column: str) -> float:
    """A metric in percent (frame accuracy is stored as a fraction, WER and CER in percent)."""
    in_percent = {"WER", "CER"} & set(column.split("_"))  # also test_WER_<group>
    return summary[column] if in_percent else 100 * summary[column]


EDGE_MARK = "(edge)"


def edge_mark(summary: Dict, column: str) -> str:
    """A mark after a WER chosen at an edge of its decoding grid (the grid may have cut a
    better setting off), else nothing."""
    grid_edge = ("valid_acoustic_scale_at_grid_edge", "valid_word_insertion_penalty_at_grid_edge")
    at_edge = any(summary.get(key) for key in grid_edge)
    return f" {EDGE_MARK}" if at_edge and column.endswith("_WER") else ""


def epoch_seconds(summary: Dict) -> str:
    """The median time of the run's epochs (its ``history``; those of an epoch resumed after a
    stop count from the resume), or "—" without a history."""
    times = [epoch["time_s"] for epoch in summary.get("history", []) if "time_s" in epoch]
    return f"{statistics.median(times):.0f}" if times else "—"


def results_table(results_folder: str) -> str:
    """Markdown tables of the runs whose ``summary.json`` files lie in ``results_folder``."""
    summary_files = sorted(Path(results_folder).glob("*/*/summary.json"))
    if not summary_files:
        raise FileNotFoundError(f"No */*/summary.json under {results_folder}.")
    summaries = [json.loads(path.read_text()) for path in summary_files]
    columns = metric_columns(summaries[0])
    names = [column.replace("_", " ") for column in columns]
    lines = [
        f"| model | seed | params | {' | '.join(names)} | train time (s) | s / epoch |",
        "|---|---|---|" + "---|" * len(columns) + "---|---|",
    ]
    for s in summaries:
        values = " | ".join(f"{percent(s, c):.2f}%{edge_mark(s, c)}" for c in columns)
        lines.append(
            f"| {s['model']} | {s['seed']} | {s['parameters']:,} | {values} | "
            f"{s['train_time_s']:.0f} | {epoch_seconds(s)} |"
        )
    if any(edge_mark(s, "valid_WER") for s in summaries):
        lines.append(f"\n{EDGE_MARK} decoded at an edge of the acoustic-scale or penalty grid")
    by_model = defaultdict(dict)
    for s in summaries:
        by_model[s["model"]][s["seed"]] = s
    if any(len(runs) > 1 for runs in by_model.values()):
        lines += ["", f"| model | seeds | {' | '.join(n + ' mean ± sd' for n in names)} |"]
        lines.append("|---|---|" + "---|" * len(columns))
        for model, runs in by_model.items():
            spreads = " | ".join(mean_sd([percent(r, c) for r in runs.values()]) for c in columns)
            lines.append(f"| {model} | {len(runs)} | {spreads} |")
    baselines = [m for m in by_model if f"{m}_blend" in by_model]
    for model in baselines:
        seeds = sorted(set(by_model[model]) & set(by_model[f"{model}_blend"]))
        for column in columns:
            gains = [
                percent(by_model[f"{model}_blend"][seed], column)
                - percent(by_model[model][seed], column)
                for seed in seeds
            ]
            lines.append(
                f"\n{model}_blend - {model}, {column.replace('_', ' ')} over seeds {seeds}: "
                f"{mean_sd(gains)} points"
            )
    return "\n".join(lines)


def mean_and_sd(values: Sequence[float]) -> Tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    return statistics.mean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def mean_sd(values: List[float]) -> str:
    """``mean ± sd`` (sd only with two or more values)."""
    mean, sd = mean_and_sd(values)
    return f"{mean:.2f} ± {sd:.2f}" if len(values) > 1 else f"{mean:.2f}"


if __name__ == "__main__":
    print(results_table(sys.argv[1]))

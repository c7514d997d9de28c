"""The study's outputs from its runs: every run's ``summary.json`` as a CSV row, markdown tables
(mean ± sd over seeds; paired differences, seed by seed) and matplotlib plots (metrics against
λ, k and T; learning curves).

A study folder holds one run per ``<condition>/<seed>/summary.json`` (the condition is the run's
``model_name``). Students' summaries carry their blending settings (``hard_weight``, ``top_k``,
``temperature``), so a row is self-describing.

    python -m blend_modules.study STUDY_FOLDER OUTPUT_FOLDER [NUM_LABELS]
    python -m blend_modules.study best STUDY_FOLDER   # λ k T of the best blend so far
"""

import csv
import json
import statistics
import sys
from pathlib import Path
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from blend_modules.report import mean_and_sd, percent

CONFIG_COLUMNS = [
    "condition",
    "seed",
    "hard_weight",
    "top_k",
    "temperature",
    "parameters",
    "train_time_s",
    "test_time_s",
    "best_epoch",
]
TEACHER, CNN, ENSEMBLE = "blstm", "cnn", "ensemble"
HEADLINE_METRICS = ["valid_frame_acc", "test_frame_acc", "valid_WER", "test_WER"]
SWEEPS = {
    "hard_weight": "λ (hard-label weight)",
    "top_k": "k (teacher labels kept)",
    "temperature": "T",
}


def collect(study_folder) -> List[Dict]:
    """One row per run: its condition, configuration and every scalar metric of its summary."""
    rows = []
    for path in sorted(Path(study_folder).glob("*/*/summary.json")):
        summary = json.loads(path.read_text())
        row = {"condition": path.parent.parent.name}
        row.update({k: v for k, v in summary.items() if isinstance(v, (int, float, str))})
        rows.append(row)
    if not rows:
        raise FileNotFoundError(f"No <condition>/<seed>/summary.json under {study_folder}.")
    return rows


def write_csv(rows: Sequence[Mapping], path) -> None:
    """The rows as CSV: configuration columns first, then every metric any run has, sorted."""
    metrics = sorted({key for row in rows for key in row} - set(CONFIG_COLUMNS))
    with open(path, "w", newline="") as csv_file:
        writer = csv.DictWriter(csv_file, fieldnames=CONFIG_COLUMNS + metrics, restval="")
        writer.writeheader()
        writer.writerows(rows)


def read_csv(path) -> List[Dict]:
    """Rows of :func:`write_csv`'s file, numbers as numbers, empty cells left out."""
    rows = []
    with open(path, newline="") as csv_file:
        for row in csv.DictReader(csv_file):
            rows.append({key: number(value) for key, value in row.items() if value != ""})
    return rows


def number(text: str):
    """``text`` as an int or float where it is one."""
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            continue
    return text


def by_condition(rows: Iterable[Mapping]) -> Dict[str, Dict[int, Mapping]]:
    """condition -> seed -> row."""
    grouped = {}
    for row in rows:
        grouped.setdefault(row["condition"], {})[row["seed"]] = row
    return grouped


def spread_table(rows: Sequence[Mapping], metrics: Sequence[str] = HEADLINE_METRICS) -> str:
    """Markdown: per condition, its seeds and each metric (in %) as mean ± sd."""
    metrics = [m for m in metrics if any(m in row for row in rows)]
    lines = [
        f"| condition | seeds | {' | '.join(m.replace('_', ' ') for m in metrics)} |",
        "|---|---|" + "---|" * len(metrics),
    ]
    for condition, runs in by_condition(rows).items():
        cells = []
        for metric in metrics:
            values = [percent(run, metric) for run in runs.values() if metric in run]
            cells.append("{:.2f} ± {:.2f}".format(*mean_and_sd(values)) if values else "")
        lines.append(f"| {condition} | {len(runs)} | {' | '.join(cells)} |")
    return "\n".join(lines)


def paired_differences(
    rows: Sequence[Mapping],
    pairs: Sequence[Tuple[str, str]],
    metrics: Sequence[str] = HEADLINE_METRICS,
) -> str:
    """Markdown: for each (condition, baseline) pair, condition − baseline per metric over the
    seeds both have (points), as mean ± sd and seed by seed."""
    grouped = by_condition(rows)
    lines = [
        "| comparison | metric | seeds | difference (points) | per seed |",
        "|---|---|---|---|---|",
    ]
    for condition, baseline in pairs:
        if condition not in grouped or baseline not in grouped:
            continue
        seeds = sorted(set(grouped[condition]) & set(grouped[baseline]))
        for metric in metrics:
            if not all(metric in grouped[c][s] for c in (condition, baseline) for s in seeds):
                continue
            gains = [
                percent(grouped[condition][s], metric) - percent(grouped[baseline][s], metric)
                for s in seeds
            ]
            per_seed = ", ".join(f"{seed}: {gain:+.2f}" for seed, gain in zip(seeds, gains))
            mean, sd = mean_and_sd(gains)
            lines.append(
                f"| {condition} − {baseline} | {metric.replace('_', ' ')} | {len(seeds)} | "
                f"{mean:+.2f} ± {sd:.2f} | {per_seed} |"
            )
    return "\n".join(lines)


def sweep_points(
    rows: Sequence[Mapping], parameter: str, fixed: Mapping[str, float], metric: str
) -> List[Tuple[float, float, float]]:
    """(value of ``parameter``, mean, sd over seeds of ``metric`` in %) of the student runs
    whose other blending settings are ``fixed``, sorted by the value; on the λ axis the
    hard-label CNN is λ = 1 (its k and T do not matter)."""
    values = {}
    for row in rows:
        hard_labels_only = parameter == "hard_weight" and row.get("hard_weight") == 1.0
        matches = hard_labels_only or all(row.get(k) == v for k, v in fixed.items())
        if parameter in row and metric in row and matches:
            values.setdefault(row[parameter], []).append(percent(row, metric))
    return [(value, *mean_and_sd(points)) for value, points in sorted(values.items())]


def plot_sweep(
    rows: Sequence[Mapping],
    parameter: str,
    fixed: Mapping[str, float],
    metrics: Sequence[str],
    path,
    num_labels: int = None,
) -> None:
    """A PNG of ``metrics`` (mean ± sd over seeds) against ``parameter`` with the others
    ``fixed``; k on a log axis, with the share of the ``num_labels`` labels on a second axis."""
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, len(metrics), figsize=(4.5 * len(metrics), 3.6))
    for axis, metric in zip(list(getattr(axes, "flat", [axes])), metrics):
        points = sweep_points(rows, parameter, fixed, metric)
        if points:
            x, mean, sd = zip(*points)
            axis.errorbar(x, mean, yerr=sd, marker="o", capsize=3)
        axis.set_xlabel(SWEEPS.get(parameter, parameter))
        axis.set_ylabel(f"{metric.replace('_', ' ')} (%)")
        if parameter == "top_k":
            axis.set_xscale("log")
            if num_labels:
                share = axis.secondary_xaxis(
                    "top",
                    functions=(lambda k: 100 * k / num_labels, lambda p: p * num_labels / 100),
                )
                share.set_xlabel("% of the labels")
        axis.grid(alpha=0.3)
    settings = ", ".join(f"{k} {v:g}" for k, v in fixed.items())
    figure.suptitle(f"{SWEEPS.get(parameter, parameter)}" + (f" ({settings})" if settings else ""))
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def plot_learning_curves(summaries: Mapping[str, Mapping], metric: str, path) -> None:
    """A PNG of each run's valid ``metric`` per epoch (``summaries``: label -> summary)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(5, 3.6))
    for label, summary in summaries.items():
        epochs = [epoch["epoch"] for epoch in summary["history"]]
        values = [percent(epoch["valid"], metric) for epoch in summary["history"]]
        axis.plot(epochs, values, marker="o", label=label)
    axis.set_xlabel("epoch")
    axis.set_ylabel(f"valid {metric.replace('_', ' ')} (%)")
    axis.legend()
    axis.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def best_blend(rows: Sequence[Mapping]) -> Optional[Tuple[str, Mapping]]:
    """The ``blend_*`` condition with the lowest mean valid WER (highest valid frame accuracy
    for runs without WER): chosen on valid, never on test; with one of its runs (its blending
    settings). None if there is no blend yet."""
    grouped = by_condition(rows)
    blends = [condition for condition in grouped if condition.startswith("blend")]
    if not blends:
        return None

    def score(condition: str) -> float:
        runs = list(grouped[condition].values())
        if all("valid_WER" in run for run in runs):
            return statistics.mean(run["valid_WER"] for run in runs)
        return -statistics.mean(run["valid_frame_acc"] for run in runs)

    best = min(blends, key=score)
    return best, next(iter(grouped[best].values()))


def main(study_folder: str, output_folder: str, num_labels: int = None) -> Dict[str, str]:
    """Write ``runs.csv``, ``tables.md`` and the plots of a study's runs into
    ``output_folder``. Conditions are named ``blstm`` (the teacher), ``cnn`` (hard labels),
    ``ensemble`` and ``blend_*`` (any settings, e.g. ``blend_l0.5_k10_T1.0``:
    ``recipes/run_study.sh``); the best blend is chosen on valid (:func:`best_blend`), and
    the sweeps are drawn through it. Returns the written files by role."""
    output = Path(output_folder)
    output.mkdir(parents=True, exist_ok=True)
    write_csv(collect(study_folder), output / "runs.csv")
    rows = read_csv(output / "runs.csv")  # what a reader of the CSV sees, numbers parsed
    grouped = by_condition(rows)
    blend = best_blend(rows)
    written = {"csv": str(output / "runs.csv"), "tables": str(output / "tables.md")}
    sections = ["## Every condition (mean ± sd over seeds)", spread_table(rows)]
    pairs = [(CNN, TEACHER), (ENSEMBLE, TEACHER), (ENSEMBLE, CNN)]
    if blend is not None:
        best, settings = blend
        pairs = [(best, CNN), (best, TEACHER), (best, ENSEMBLE), *pairs]
        sections.insert(0, f"Best blend on valid: **{best}**.")
        for parameter in SWEEPS:
            fixed = {k: settings[k] for k in SWEEPS if k != parameter and k in settings}
            path = output / f"sweep_{parameter}.png"
            plot_sweep(rows, parameter, fixed, HEADLINE_METRICS, path, num_labels)
            written[f"sweep_{parameter}"] = str(path)
    sections += ["## Paired differences (condition − baseline, same seed)"]
    sections.append(paired_differences(rows, pairs))
    (output / "tables.md").write_text("\n\n".join(sections) + "\n")
    curves = {}
    for condition in [TEACHER, CNN, *([blend[0]] if blend else [])]:
        if condition in grouped:
            first_seed = min(grouped[condition])
            path = Path(study_folder) / condition / str(first_seed) / "summary.json"
            curves[f"{condition} (seed {first_seed})"] = json.loads(path.read_text())
    if curves:
        plot_learning_curves(curves, "frame_acc", output / "learning_curves.png")
        written["learning_curves"] = str(output / "learning_curves.png")
    return written


def best_settings(study_folder) -> Tuple[float, int, float]:
    """(λ, k, T) of the best blend so far (:func:`best_blend`), for the runner's next sweep."""
    blend = best_blend(collect(study_folder))
    if blend is None:
        raise ValueError(f"No blend_* run under {study_folder} yet.")
    _, settings = blend
    return settings["hard_weight"], settings["top_k"], settings["temperature"]


if __name__ == "__main__":
    if sys.argv[1] == "best":  # python -m blend_modules.study best STUDY_FOLDER
        print(*best_settings(sys.argv[2]))
    else:
        main(sys.argv[1], sys.argv[2], *(int(n) for n in sys.argv[3:4]))

"""The study's outputs from its runs: every run's ``summary.json`` as a CSV row, markdown tables
(mean ± sd over seeds; paired differences, seed by seed) and matplotlib plots (metrics against
λ, k and T; learning curves).

A study folder holds one run per ``<condition>/<seed>/summary.json`` (the condition is the run's
``model_name``) and the study's ``plan.json``: the (condition, baseline) pairs its plan compares
(:mod:`blend_modules.study.plans`, written by :mod:`blend_modules.study.runner`). Students'
summaries carry their blending settings (``hard_weight``, ``top_k``, ``temperature``), so a row
is self-describing. Each run's ``utterances_test.csv`` (per test utterance: frames, correct
frames, word errors, reference words) and the test manifest's ``spk_id`` give a bootstrap over
test speakers of each paired difference.

    python -m blend_modules.analysis.study STUDY_FOLDER OUTPUT_FOLDER [--num_labels N] \
        [--test_manifest CSV]
"""

import argparse
import csv
import json
import re
import statistics
from pathlib import Path
from typing import Dict, Iterable, List, Mapping, NamedTuple, Optional, Sequence, Tuple

import numpy as np

from blend_modules.analysis.curves import plot_curves
from blend_modules.analysis.report import mean_and_sd, percent

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


COST_METRICS = ["parameters", "train_time_s", "test_time_s"]


# test metrics per value of the recipe's test_breakdown column, e.g. test_WER_child
GROUP_METRIC = re.compile(r"test_(frame_acc|WER)_(?!at_scale)[A-Za-z]\w*$")


UTTERANCE_SCORES = "utterances_test.csv"


# a metric from summed per-utterance counts: (numerator, denominator) columns
COUNTED_METRICS = {
    "test_WER": ("word_errors", "reference_words"),
    "test_frame_acc": ("correct_frames", "frames"),
}


REFERENCE_STYLES = [("--", "tab:red"), (":", "tab:green"), ("-.", "tab:purple"), ("--", "tab:gray")]


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
        if "members" in summary:  # an ensemble: its train time is its members'
            row["members"] = len(summary["members"])
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


def value(row: Mapping, metric: str) -> float:
    """A metric of a row: rates in %, costs (parameters, seconds) as they are."""
    return row[metric] if metric in COST_METRICS else percent(row, metric)


def group_metrics(rows: Sequence[Mapping]) -> List[str]:
    """The test metrics per group (e.g. ``test_WER_child``) that the rows have, sorted."""
    return sorted({key for row in rows for key in row if GROUP_METRIC.match(key)})


def spread_table(rows: Sequence[Mapping], metrics: Sequence[str] = HEADLINE_METRICS) -> str:
    """Markdown: per condition, its seeds and each metric (rates in %) as mean ± sd."""
    metrics = [m for m in metrics if any(m in row for row in rows)]
    lines = [
        f"| condition | seeds | {' | '.join(m.replace('_', ' ') for m in metrics)} |",
        "|---|---|" + "---|" * len(metrics),
    ]
    for condition, runs in by_condition(rows).items():
        cells = []
        for metric in metrics:
            values = [value(run, metric) for run in runs.values() if metric in run]
            number = "{:,.0f}" if metric in COST_METRICS else "{:.2f}"
            cells.append(mean_sd_text(values, number) if values else "")
        lines.append(f"| {condition} | {len(runs)} | {' | '.join(cells)} |")
    return "\n".join(lines)


def compute_text(rows: Sequence[Mapping]) -> str:
    """The finished runs' compute (a study's budget): training and test time summed over runs,
    an ensemble's test only (its members' training is counted with them)."""
    seconds = sum(
        row.get("test_time_s", 0) + (0 if "members" in row else row.get("train_time_s", 0))
        for row in rows
    )
    return (
        f"Finished runs: {len(rows)}, {seconds / 3600:.1f} hours of training and test time"
        " (an ensemble counts its test only: its members' training is counted with them)."
    )


def mean_sd_text(values: Sequence[float], number: str) -> str:
    """``mean ± sd`` in the ``number`` format; the value alone for a single run (no spread)."""
    if len(values) == 1:
        return number.format(values[0])
    mean, sd = mean_and_sd(values)
    return f"{number.format(mean)} ± {number.replace('+', '').format(sd)}"  # sd: no sign


def paired_seeds(grouped: Mapping[str, Mapping], pairs: Sequence[Tuple[str, str]]):
    """(condition, baseline, the seeds both ran) of each pair whose two conditions exist."""
    for condition, baseline in pairs:
        if condition in grouped and baseline in grouped:
            yield condition, baseline, sorted(set(grouped[condition]) & set(grouped[baseline]))


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
    for condition, baseline, seeds in paired_seeds(grouped, pairs):
        for metric in metrics:
            if not all(metric in grouped[c][s] for c in (condition, baseline) for s in seeds):
                continue
            gains = [
                percent(grouped[condition][s], metric) - percent(grouped[baseline][s], metric)
                for s in seeds
            ]
            per_seed = ", ".join(f"{seed}: {gain:+.2f}" for seed, gain in zip(seeds, gains))
            lines.append(
                f"| {condition} − {baseline} | {metric.replace('_', ' ')} | {len(seeds)} | "
                f"{mean_sd_text(gains, '{:+.2f}')} | {per_seed} |"
            )
    return "\n".join(lines)


def read_speakers(manifest) -> Dict[str, str]:
    """Utterance ID -> speaker (the manifest's ``spk_id``); ``ValueError`` naming the file if
    it has no such column."""
    with open(manifest, newline="") as csv_file:
        reader = csv.DictReader(csv_file)
        if "spk_id" not in (reader.fieldnames or []):
            raise ValueError(f"{manifest}: no spk_id column; a bootstrap over speakers needs it.")
        return {row["ID"]: row["spk_id"] for row in reader}


def speaker_counts(
    utterance_scores_file, speakers: Mapping[str, str], columns: Sequence[str]
) -> np.ndarray:
    """``[speakers, columns]`` sums of a run's per-utterance counts (``utterances_test.csv``),
    speakers in sorted order; ``ValueError`` naming the file and utterance if an utterance is
    not in the manifest or a test utterance is missing."""
    order = {speaker: i for i, speaker in enumerate(sorted(set(speakers.values())))}
    counts = np.zeros((len(order), len(columns)))
    seen = set()
    with open(utterance_scores_file, newline="") as csv_file:
        for row in csv.DictReader(csv_file):
            if row["ID"] not in speakers:
                raise ValueError(f"{utterance_scores_file}: {row['ID']} is not in the manifest.")
            counts[order[speakers[row["ID"]]]] += [float(row[column]) for column in columns]
            seen.add(row["ID"])
    if len(seen) != len(speakers):
        missing = sorted(set(speakers) - seen)
        raise ValueError(
            f"{utterance_scores_file}: {len(missing)} test utterance(s) missing, e.g. {missing[0]}."
        )
    return counts


class Interval(NamedTuple):
    """A paired difference on the whole test set and its 95% bootstrap intervals: over
    speakers only (``low``, ``high``), and over speakers and seeds (``seeds_low``,
    ``seeds_high``)."""

    difference: float
    low: float
    high: float
    seeds_low: float
    seeds_high: float


def bootstrap_difference(
    condition: Sequence[np.ndarray],
    baseline: Sequence[np.ndarray],
    scale: float = 100.0,
    resamples: int = 2000,
    seed: int = 0,
) -> Interval:
    """Difference of a ratio metric (``scale`` · numerator / denominator, e.g. WER in %)
    between two systems, averaged over seeds, on the whole test set and its 95% bootstrap
    intervals, resampling **speakers** (not frames or utterances) with replacement, and then
    also the seeds (the paired runs of a seed stay together): the first interval is what the
    choice of test speakers leaves uncertain, the second adds what the choice of seeds does
    (with 3 seeds a coarse one). Each argument holds one ``[speakers, 2]`` (numerator,
    denominator) count array per seed, the seeds in the same order."""
    num_speakers, num_seeds = condition[0].shape[0], len(condition)
    rng = np.random.default_rng(seed)
    # how often each speaker is drawn in each resample; row 0: the test set itself
    draws = rng.multinomial(num_speakers, np.full(num_speakers, 1 / num_speakers), resamples)
    draws = np.vstack([np.ones(num_speakers), draws])

    def metric(counts: np.ndarray) -> np.ndarray:
        return scale * (draws @ counts[:, 0]) / (draws @ counts[:, 1])

    per_seed = np.array([metric(c) - metric(b) for c, b in zip(condition, baseline)])
    differences = per_seed.mean(axis=0)
    seed_draws = rng.multinomial(num_seeds, np.full(num_seeds, 1 / num_seeds), resamples)
    with_seeds = (seed_draws * per_seed[:, 1:].T).sum(axis=1) / num_seeds
    low, high = np.percentile(differences[1:], [2.5, 97.5])
    seeds_low, seeds_high = np.percentile(with_seeds, [2.5, 97.5])
    return Interval(*(float(x) for x in (differences[0], low, high, seeds_low, seeds_high)))


def bootstrap_table(
    study_folder,
    rows: Sequence[Mapping],
    pairs: Sequence[Tuple[str, str]],
    test_manifest,
    resamples: int = 2000,
) -> str:
    """Markdown: for each (condition, baseline) pair, the test WER and frame accuracy
    difference (mean over the seeds both have, points) with its 95% intervals from a bootstrap
    over the manifest's test speakers, and over speakers and seeds."""
    speakers = read_speakers(test_manifest)
    if len(set(speakers.values())) < 2:  # every resample would be the test set itself
        return f"{test_manifest} has one speaker: no bootstrap over speakers."
    grouped = by_condition(rows)
    lines = [
        f"Bootstrap over the {len(set(speakers.values()))} test speakers ({resamples} "
        "resamples of speakers with replacement; the difference averaged over the seeds), and "
        "over speakers and seeds (the seeds drawn with replacement too, a seed's paired runs "
        "together; with one seed the two are the same):",
        "",
        "| comparison | metric | seeds | difference (points) | 95% interval, speakers "
        "| 95% interval, speakers and seeds |",
        "|---|---|---|---|---|---|",
    ]
    for condition, baseline, seeds in paired_seeds(grouped, pairs):
        files = {
            name: [Path(study_folder, name, str(seed), UTTERANCE_SCORES) for seed in seeds]
            for name in (condition, baseline)
        }
        if not seeds or not all(path.is_file() for paths in files.values() for path in paths):
            continue
        for metric, columns in COUNTED_METRICS.items():
            if not all(metric in grouped[name][seed] for name in files for seed in seeds):
                continue
            counts = {
                name: [speaker_counts(path, speakers, columns) for path in paths]
                for name, paths in files.items()
            }
            interval = bootstrap_difference(
                counts[condition], counts[baseline], resamples=resamples
            )
            lines.append(
                f"| {condition} − {baseline} | {metric.replace('_', ' ')} | {len(seeds)} | "
                f"{interval.difference:+.2f} | [{interval.low:+.2f}, {interval.high:+.2f}] | "
                f"[{interval.seeds_low:+.2f}, {interval.seeds_high:+.2f}] |"
            )
    return "\n".join(lines)


def sweep_settings(
    rows: Sequence[Mapping], parameter: str, best: Mapping
) -> Optional[Dict[str, float]]:
    """The other blending settings of the sweep over ``parameter``: those at which the
    ``blend*`` runs took the most values of it (the best blend's on a tie), e.g. k was swept at
    T 1 even if T 2 turned out best afterwards. None if it took fewer than two values at any
    settings: it was not swept (e.g. the CTC study's blends differ in their soft term only)."""
    others = [k for k in SWEEPS if k != parameter]
    values = {}
    for row in rows:
        if row["condition"].startswith("blend") and all(k in row for k in SWEEPS):
            values.setdefault(tuple(row[k] for k in others), set()).add(row[parameter])
    best_fixed = tuple(best.get(k) for k in others)
    chosen = max(values, key=lambda fixed: (len(values[fixed]), fixed == best_fixed), default=None)
    if chosen is None or len(values[chosen]) < 2:
        return None
    return dict(zip(others, chosen))


def sweep_points(
    rows: Sequence[Mapping], parameter: str, fixed: Mapping[str, float], metric: str
) -> List[Tuple[float, float, float]]:
    """(value of ``parameter``, mean, sd over seeds of ``metric`` in %) of the ``blend*`` runs
    whose other blending settings are ``fixed``, sorted by the value; on the λ axis the
    hard-label CNN is λ = 1 (its k and T do not matter). Remedies are not points."""
    values = {}
    for row in rows:
        if row["condition"] == CNN:
            matches = parameter == "hard_weight"
        else:
            matches = row["condition"].startswith("blend") and all(
                row.get(k) == v for k, v in fixed.items()
            )
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
    references: Mapping[str, Mapping[str, float]] = None,
) -> None:
    """A PNG of ``metrics`` (mean ± sd over seeds) against ``parameter`` with the others
    ``fixed``; k on a log axis, with the share of the ``num_labels`` labels on a second axis.
    ``references`` (label -> metric -> value, e.g. the teacher's mean) are drawn as horizontal
    lines."""
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter, ScalarFormatter

    columns = 2 if len(metrics) > 2 else len(metrics)
    rows_of_plots = -(-len(metrics) // columns)
    figure, axes = plt.subplots(
        rows_of_plots, columns, figsize=(5.5 * columns, 3.8 * rows_of_plots)
    )
    for axis, metric in zip(list(getattr(axes, "flat", [axes])), metrics):
        points = sweep_points(rows, parameter, fixed, metric)
        if points:
            x, mean, sd = zip(*points)
            axis.errorbar(x, mean, yerr=sd, marker="o", capsize=3, label="blended CNN")
        for (label, values), (style, color) in zip((references or {}).items(), REFERENCE_STYLES):
            if metric in values:
                axis.axhline(values[metric], linestyle=style, color=color, label=label)
        if references:
            axis.legend(fontsize="small")
        axis.set_xlabel(SWEEPS.get(parameter, parameter))
        axis.set_ylabel(f"{metric.replace('_', ' ')} (%)")
        if parameter == "top_k":
            axis.set_xscale("log")
            if points:  # plain numbers at the values run, not powers of ten
                axis.set_xticks(x)
                axis.xaxis.set_major_formatter(ScalarFormatter())
                axis.xaxis.set_minor_formatter(NullFormatter())
            if num_labels:
                share = axis.secondary_xaxis(
                    "top",
                    functions=(lambda k: 100 * k / num_labels, lambda p: p * num_labels / 100),
                )
                share.set_xlabel("% of the labels")
                share.xaxis.set_major_formatter(ScalarFormatter())
                share.xaxis.set_minor_formatter(NullFormatter())
        axis.grid(alpha=0.3)
    settings = ", ".join(f"{k} {v:g}" for k, v in fixed.items())
    figure.suptitle(f"{SWEEPS.get(parameter, parameter)}" + (f" ({settings})" if settings else ""))
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def best_blend(rows: Sequence[Mapping]) -> Optional[Tuple[str, Mapping]]:
    """The ``blend_*`` condition with the lowest valid WER (highest valid frame accuracy for
    runs without WER), chosen on valid, never on test, and on the same seeds for every
    candidate: the seeds all of them ran (a sweep's seed), so that a one-seed sweep value is
    never compared with a three-seed mean; with one of its runs (its blending settings). None
    if there is no blend yet; ``ValueError`` if the candidates share no seed."""
    grouped = by_condition(rows)
    blends = [condition for condition in grouped if condition.startswith("blend")]
    if not blends:
        return None
    common = set.intersection(*(set(grouped[condition]) for condition in blends))
    if not common:
        raise ValueError(f"The blend conditions {blends} share no seed to be compared on.")

    def score(condition: str) -> float:
        runs = [grouped[condition][seed] for seed in sorted(common)]
        if all("valid_WER" in run for run in runs):
            return statistics.mean(run["valid_WER"] for run in runs)
        return -statistics.mean(run["valid_frame_acc"] for run in runs)

    best = min(blends, key=score)
    return best, next(iter(grouped[best].values()))


def mean_metrics(runs: Sequence[Mapping], metrics: Sequence[str]) -> Dict[str, float]:
    """Mean over the runs (seeds) of each metric (in %) that every run has."""
    return {
        metric: statistics.mean(percent(run, metric) for run in runs)
        for metric in metrics
        if all(metric in run for run in runs)
    }


def read_comparisons(study_folder) -> List[Tuple[str, str]]:
    """The (condition, baseline) pairs of the study's ``plan.json``; ``FileNotFoundError``
    naming it if the study was not run by :mod:`blend_modules.study.runner`."""
    plan = Path(study_folder) / "plan.json"
    if not plan.is_file():
        raise FileNotFoundError(
            f"{plan}: no plan; run the study with python -m blend_modules.study.runner (it "
            "skips the runs that have finished and writes the plan)."
        )
    return [tuple(pair) for pair in json.loads(plan.read_text())["comparisons"]]


def main(
    study_folder: str,
    output_folder: str,
    num_labels: int = None,
    test_manifest: str = None,
    comparisons: Sequence[Tuple[str, str]] = None,
) -> Dict[str, str]:
    """Write ``runs.csv``, ``tables.md`` and the plots of a study's runs into
    ``output_folder``: every condition's mean ± sd, and the paired differences of the
    ``comparisons`` (default: the study's ``plan.json``) whose conditions ran. The best
    ``blend*`` condition is chosen on valid (:func:`best_blend`), and the sweeps are drawn
    through it, with the teacher (``blstm``), the CNN (``cnn``), the ensemble (``ensemble``)
    and (k, with ``num_labels``) the whole distribution as reference lines. With the
    ``test_manifest`` (its ``spk_id``), the paired differences also get a bootstrap over test
    speakers. Returns the written files by role."""
    pairs = list(comparisons if comparisons is not None else read_comparisons(study_folder))
    output = Path(output_folder)
    output.mkdir(parents=True, exist_ok=True)
    write_csv(collect(study_folder), output / "runs.csv")
    rows = read_csv(output / "runs.csv")  # what a reader of the CSV sees, numbers parsed
    grouped = by_condition(rows)
    blend = best_blend(rows)
    written = {"csv": str(output / "runs.csv"), "tables": str(output / "tables.md")}
    sections = ["## Every condition (mean ± sd over seeds)", spread_table(rows)]
    if group_metrics(rows):
        sections += [
            "## Test by group (mean ± sd over seeds)",
            spread_table(rows, group_metrics(rows)),
        ]
    sections += [
        "## Cost (mean ± sd over seeds)",
        spread_table(rows, COST_METRICS),
        compute_text(rows),
    ]
    if blend is not None:
        best, settings = blend
        sections.insert(0, f"Best blend on valid: **{best}**.")
        references = {
            label: mean_metrics(list(grouped[condition].values()), HEADLINE_METRICS)
            for label, condition in (("teacher", TEACHER), ("CNN", CNN), ("ensemble", ENSEMBLE))
            if condition in grouped
        }
        for parameter in SWEEPS:
            fixed = sweep_settings(rows, parameter, settings)
            if fixed is None:
                continue
            lines = dict(references)
            full = [  # k = every label: the teacher's whole distribution
                row
                for row in rows
                if row.get("top_k") == num_labels and all(row.get(k) == v for k, v in fixed.items())
            ]
            if parameter == "top_k" and full:
                lines["full distribution"] = mean_metrics(full, HEADLINE_METRICS)
            path = output / f"sweep_{parameter}.png"
            plot_sweep(rows, parameter, fixed, HEADLINE_METRICS, path, num_labels, lines)
            written[f"sweep_{parameter}"] = str(path)
    sections += ["## Paired differences (condition − baseline, same seed)"]
    sections.append(paired_differences(rows, pairs))
    if test_manifest is not None:
        sections += [
            "## Paired differences over test speakers",
            bootstrap_table(study_folder, rows, pairs, test_manifest),
        ]
    (output / "tables.md").write_text("\n\n".join(sections) + "\n")
    curves = {}
    for condition in [TEACHER, CNN, *([blend[0]] if blend else [])]:
        if condition in grouped:
            first_seed = min(grouped[condition])
            path = Path(study_folder) / condition / str(first_seed) / "summary.json"
            curves[f"{condition} (seed {first_seed})"] = json.loads(path.read_text())["history"]
    if curves:
        plot_curves(curves, output / "learning_curves.png")
        written["learning_curves"] = str(output / "learning_curves.png")
    return written


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("study_folder")
    parser.add_argument("output_folder")
    parser.add_argument("--num_labels", type=int, help="the label set's size (k axis)")
    parser.add_argument("--test_manifest", help="test CSV with spk_id: speaker bootstrap")
    arguments = parser.parse_args()
    main(**vars(arguments))

"""Learning curves from run histories: per epoch, training and valid frame accuracy (frame
targets) and valid WER (CTC targets, and frame targets that decoded valid after every epoch:
``FrameTargets(valid_wer_every_epoch=True)``); one line per run.

    python -m blend_modules.analysis.curves OUTPUT.png RUN_FOLDER [RUN_FOLDER ...]

A run folder is ``<results>/<model>/<seed>`` (its ``summary.json`` holds the history). Also
prints, per run, the best epoch by valid frame accuracy and by valid WER, and the epochs whose
learning rate was lower than the one before (the schedule's annealing).
"""

import json
import sys
from pathlib import Path
from typing import Dict, List, Mapping, Sequence


def read_history(run_folder: Path) -> List[Dict]:
    """The per-epoch history of a finished run (``ValueError`` naming the folder if none)."""
    summary = Path(run_folder) / "summary.json"
    if not summary.is_file():
        raise ValueError(f"{run_folder}: no summary.json (is the run finished?)")
    return json.loads(summary.read_text())["history"]


def best_epochs(history: Sequence[Dict]) -> Dict[str, int]:
    """The epoch of the best valid frame accuracy and of the best valid WER, where reported."""
    best = {}
    with_accuracy = [epoch for epoch in history if "frame_acc" in epoch["valid"]]
    if with_accuracy:
        best["frame_acc"] = max(with_accuracy, key=lambda e: e["valid"]["frame_acc"])["epoch"]
    decoded = [epoch for epoch in history if "WER" in epoch["valid"]]
    if decoded:
        best["WER"] = min(decoded, key=lambda e: e["valid"]["WER"])["epoch"]
    return best


def annealed_epochs(history: Sequence[Dict]) -> List[int]:
    """The epochs that trained at a lower learning rate than the epoch before."""
    rates = [(epoch["epoch"], epoch.get("lr")) for epoch in history]
    return [e for (_, a), (e, b) in zip(rates, rates[1:]) if a and b and b < a]


def plot_curves(histories: Mapping[str, Sequence[Dict]], output: Path) -> None:
    """One panel per metric the histories report (frame accuracy: valid solid, training
    dashed; valid WER), one line per run (``histories``: label -> history)."""
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    panels = [
        metric
        for metric in ("frame_acc", "WER")
        if any(metric in epoch["valid"] for history in histories.values() for epoch in history)
    ]
    figure, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4), squeeze=False)
    for label, history in histories.items():
        color = None
        for axis, metric in zip(axes[0], panels):
            epochs = [epoch for epoch in history if metric in epoch["valid"]]
            scale = 100 if metric == "frame_acc" else 1  # fractions; WER is in percent
            x = [epoch["epoch"] for epoch in epochs]
            line = axis.plot(
                x,
                [scale * epoch["valid"][metric] for epoch in epochs],
                marker="o",
                markersize=3,
                color=color,
                label=label,
            )[0]
            color = line.get_color()
            if all(metric in epoch.get("train", {}) for epoch in epochs):
                training = [scale * epoch["train"][metric] for epoch in epochs]
                axis.plot(x, training, linestyle="--", color=color)
    titles = {"frame_acc": "frame accuracy: valid (solid), training (dashed)", "WER": "valid WER"}
    for axis, metric in zip(axes[0], panels):
        axis.set(xlabel="epoch", ylabel=f"{metric.replace('_', ' ')} (%)", title=titles[metric])
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(output, dpi=110)
    plt.close(figure)


def run_labels(run_folders: Sequence[Path]) -> List[str]:
    """``model (seed N)`` for each run folder; ``results/model (seed N)`` where two runs share a
    model name and seed (e.g. the same model in two results folders)."""
    short = [f"{Path(f).parent.name} (seed {Path(f).name})" for f in run_folders]
    return [
        label if short.count(label) == 1 else f"{Path(f).parent.parent.name}/{label}"
        for f, label in zip(run_folders, short)
    ]


def main(output: Path, run_folders: Sequence[Path]) -> None:
    histories = {}
    for folder, label in zip(run_folders, run_labels(run_folders)):
        history = read_history(folder)
        histories[label] = history
        print(
            f"{folder}: best epoch {best_epochs(history)}, "
            f"learning rate lowered at {annealed_epochs(history)}"
        )
    plot_curves(histories, output)


if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    main(Path(sys.argv[1]), [Path(folder) for folder in sys.argv[2:]])

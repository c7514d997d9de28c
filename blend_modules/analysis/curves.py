"""Learning curves from run summaries: per epoch, training and valid frame accuracy, valid WER
(where the run decoded valid after every epoch: ``FrameTargets(valid_wer_every_epoch=True)``);
one line per run.

    python -m blend_modules.analysis.curves OUTPUT.png RUN_FOLDER [RUN_FOLDER ...]

A run folder is ``<results>/<model>/<seed>`` (its ``summary.json`` holds the history). Also
prints, per run, the best epoch by valid frame accuracy and by valid WER, and the epochs whose
learning rate was lower than the one before (the schedule's annealing)."""

import json
import sys
from pathlib import Path
from typing import Dict, List, Sequence


def read_history(run_folder: Path) -> List[Dict]:
    """The per-epoch history of a finished run (``ValueError`` naming the folder if none)."""
    summary = Path(run_folder) / "summary.json"
    if not summary.is_file():
        raise ValueError(f"{run_folder}: no summary.json (is the run finished?)")
    return json.loads(summary.read_text())["history"]


def best_epochs(history: Sequence[Dict]) -> Dict[str, int]:
    """The epoch of the best valid frame accuracy, and of the best valid WER if decoded."""
    best = {"frame_acc": max(history, key=lambda e: e["valid"]["frame_acc"])["epoch"]}
    decoded = [epoch for epoch in history if "WER" in epoch["valid"]]
    if decoded:
        best["WER"] = min(decoded, key=lambda e: e["valid"]["WER"])["epoch"]
    return best


def plot_curves(run_folders: Sequence[Path], output: Path) -> None:
    """Frame accuracy (training dashed, valid solid) and valid WER against the epoch."""
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    figure, (accuracy_axes, wer_axes) = plt.subplots(1, 2, figsize=(11, 4))
    for folder in run_folders:
        history = read_history(folder)
        label = f"{Path(folder).parent.name} (seed {Path(folder).name})"
        epochs = [epoch["epoch"] for epoch in history]
        valid = [100 * epoch["valid"]["frame_acc"] for epoch in history]
        line = accuracy_axes.plot(epochs, valid, marker="o", markersize=3, label=label)[0]
        training = [100 * epoch["train"]["frame_acc"] for epoch in history]
        accuracy_axes.plot(epochs, training, linestyle="--", color=line.get_color())
        decoded = [epoch for epoch in history if "WER" in epoch["valid"]]
        if decoded:
            wer_axes.plot(
                [epoch["epoch"] for epoch in decoded],
                [epoch["valid"]["WER"] for epoch in decoded],
                marker="o",
                markersize=3,
                color=line.get_color(),
                label=label,
            )
        rates = [epoch.get("lr") for epoch in history]
        annealed = [e for e, (a, b) in zip(epochs[1:], zip(rates, rates[1:])) if a and b and b < a]
        print(f"{folder}: best epoch {best_epochs(history)}, learning rate lowered at {annealed}")
    accuracy_axes.set(xlabel="epoch", ylabel="frame accuracy (%)")
    accuracy_axes.set_title("valid (solid), training (dashed)")
    wer_axes.set(xlabel="epoch", ylabel="valid WER (%)", title="valid WER (best acoustic scale)")
    for axes in (accuracy_axes, wer_axes):
        axes.grid(alpha=0.3)
        axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(output, dpi=120)
    plt.close(figure)


if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    plot_curves([Path(folder) for folder in sys.argv[2:]], Path(sys.argv[1]))

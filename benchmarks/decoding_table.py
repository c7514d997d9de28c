#!/usr/bin/env python3
"""The table of :file:`decoding_grid.sh`'s runs: for every ``<grid>/<model>/<seed>/summary.json``
below a folder, valid and test WER, the acoustic scale and word insertion penalty valid chose,
and whether the scale sits at the edge of its grid.

    python benchmarks/decoding_table.py RESULTS/decoding
"""

import json
import sys
from pathlib import Path


def main(folder: Path) -> None:
    print("| settings | model | valid WER | test WER | scale | penalty | test WER child / adult |")
    print("|---|---|---|---|---|---|---|")
    for path in sorted(folder.glob("*/*/*/summary.json")):
        summary = json.loads(path.read_text())
        settings, model = path.parts[-4], path.parts[-3]
        scales = sorted(
            float(key.split("_")[4]) for key in summary if key.startswith("valid_WER_at_scale_")
        )
        scale = summary["valid_acoustic_scale"]
        edge = " (edge)" if scales and scale in (scales[0], scales[-1]) else ""
        print(
            f"| {settings} | {model} | {summary['valid_WER']:.2f} | {summary['test_WER']:.2f} | "
            f"{scale:g}{edge} | {summary.get('valid_word_insertion_penalty', 0):g} | "
            f"{summary.get('test_WER_child', float('nan')):.2f} / "
            f"{summary.get('test_WER_adult', float('nan')):.2f} |"
        )


if __name__ == "__main__":
    main(Path(sys.argv[1]))

#!/usr/bin/env python3
"""The GPU check: does the recipe run on a CUDA device, in fp32 and mixed precision, and how
fast does it train the paper-scale pair? Under 8 minutes on one GPU:

    python benchmarks/gpu_check.py [--device cuda:0] [--output gpu_check.json]
    python benchmarks/gpu_check.py --device cpu --tiny   # the same on CPU, tiny (the CI test)

1. **The recipe on the device.** FSDD's teacher (``train_teacher.py hparams/blstm.yaml``) and
   blended CNN (``train_blend.py hparams/cnn_blend.yaml``, offline store) train one epoch on a
   small FSDD corpus in each precision the device runs (``--precision`` fp32, fp16, bf16; on a
   CPU fp32, and bf16 where it has oneDNN's bf16 kernels: the report's ``left_out`` says what was
   skipped and why), in fresh processes; every loss of the epoch must be finite, and the epoch's
   mean training loss must match a separate CPU fp32 reference run (same seed, same batches: its
   first steps) within ``TOLERANCE`` (relative; on CPU, fp32 must reproduce it exactly).
2. **Training frames/s of the paper-scale pair** (``hparams/models/blstm_paper.yaml``,
   ``vgg_paper.yaml``; Switchboard-sized output layer, ``NUM_PDFS``): forward, frame
   cross-entropy, backward and an Adam step on random 5 s utterances, per batch size and
   precision, after warm-up steps.
3. **The teacher store's dump frames/s**: the fp32 teacher of step 1 dumping its store (FSDD
   keeps all 31 labels) over the training set, on the device (benchmarks/teacher_store.py's
   ``dump_speed``).

Writes one JSON and prints a table. Results: docs/PERFORMANCE.md.
"""

import argparse
import json
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List

import torch
from hyperpyyaml import load_hyperpyyaml

from blend_modules.training.devices import PRECISIONS, unsupported_precision

REPO = Path(__file__).resolve().parents[1]
RECIPE = REPO / "recipes" / "FSDD" / "Blend"
MODELS = REPO / "hparams" / "models"
NUM_FEATURES, NUM_PDFS = 40, 8000  # Switchboard s5c tri4: some 8-9 k pdfs
TOLERANCE = {"fp32": 0.005, "fp16": 0.03, "bf16": 0.05}  # of CPU fp32's mean epoch loss
AUTOCAST = {"fp16": torch.float16, "bf16": torch.bfloat16}


def recipe_epoch(script: str, yaml: str, device: str, precision: str, folder: Path, splits) -> Dict:
    """One epoch of an FSDD recipe script in a fresh process; its training losses and time."""
    corpus = f"{{utterances_per_split: {json.dumps(splits)}}}"
    command = [sys.executable, script, f"hparams/{yaml}", f"--corpus={corpus}"]
    command += [f"--device={device}", f"--precision={precision}", "--number_of_epochs=1"]
    command += [f"--results_folder={folder}", f"--prepared_folder={folder.parent / 'prepared'}"]
    command += ["--batch_size=8", "--dynamic_batching=False"]
    start = time.perf_counter()
    result = subprocess.run(command, cwd=RECIPE, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{result.stderr[-3000:]}")
    model = yaml.replace(".yaml", "")
    summary = json.loads((folder / model / "1986" / "summary.json").read_text())
    train = summary["history"][0]["train"]
    return {
        "train_loss": train["loss"],
        "skipped_nonfinite": train["skipped_nonfinite"],
        "seconds": round(time.perf_counter() - start, 1),
    }


def check_recipe(device: str, precisions: List[str], folder: Path, splits) -> Dict:
    """Teacher and blended CNN, one epoch per precision on ``device``, against a CPU fp32
    reference run of their own (so that CPU fp32 is checked too: a fresh process must
    reproduce it)."""
    results = {}
    runs = {"reference": ("cpu", "fp32")}
    runs.update({f"{device} {precision}": (device, precision) for precision in precisions})
    for name, (run_device, precision) in runs.items():
        run = folder / name.replace(":", "").replace(" ", "_")
        results[name] = {
            model: recipe_epoch(script, f"{model}.yaml", run_device, precision, run, splits)
            for script, model in (("train_teacher.py", "blstm"), ("train_blend.py", "cnn_blend"))
        }
    reference = results.pop("reference")
    for name, models in results.items():
        for model, run in models.items():
            expected = reference[model]["train_loss"]
            run["relative_difference"] = abs(run["train_loss"] - expected) / abs(expected)
            # the same CPU, seed and batches: fp32 must reproduce its reference bit for bit
            tolerance = 0.0 if name == "cpu fp32" else TOLERANCE[name.split()[-1]]
            run["ok"] = bool(
                math.isfinite(run["train_loss"])
                and run["skipped_nonfinite"] == 0
                and run["relative_difference"] <= tolerance
            )
    return results


def training_speed(
    model_yaml: Path, device: str, precision: str, batch_size: int, frames: int, steps: int
) -> float:
    """Training frames/s of a model YAML: ``steps`` timed steps after 2 warm-up steps."""
    torch.manual_seed(0)
    with open(model_yaml) as fin:
        model = load_hyperpyyaml(fin, {"num_features": NUM_FEATURES, "num_labels": NUM_PDFS})
    model = model["model"].to(device).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    scaler = torch.amp.GradScaler(enabled=precision == "fp16" and device.startswith("cuda"))
    features = torch.randn(batch_size, frames, NUM_FEATURES, device=device)
    labels = torch.randint(NUM_PDFS, (batch_size, frames), device=device)
    lengths = torch.ones(batch_size, device=device)

    def step():
        optimizer.zero_grad()
        with torch.autocast(
            device.split(":")[0], dtype=AUTOCAST.get(precision), enabled=precision in AUTOCAST
        ):
            logits = model(features, lengths)
            loss = torch.nn.functional.cross_entropy(logits.float().flatten(0, 1), labels.flatten())
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()

    for _ in range(2):
        step()
    if device.startswith("cuda"):
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    if device.startswith("cuda"):
        torch.cuda.synchronize(device)
    return batch_size * frames * steps / (time.perf_counter() - start)


def store_dump_speed(teacher_folder: Path, device: str, splits) -> float:
    """Frames/s of dumping a trained FSDD teacher's store over its training set (batches of
    16), with benchmarks/teacher_store.py's measurement."""
    sys.path.insert(0, str(RECIPE))  # the recipe's prepare module, as its scripts have it
    sys.path.insert(0, str(REPO / "benchmarks"))
    from teacher_store import dump_speed

    from blend_modules.data.hparams import load_hparams_file

    hparams = load_hparams_file(
        RECIPE / "hparams" / "cnn_blend.yaml",
        {
            "corpus": {"utterances_per_split": splits},
            "prepared_folder": str(teacher_folder.parents[2] / "prepared"),
            "teacher_folder": str(teacher_folder),
        },
    )
    with tempfile.TemporaryDirectory() as store:
        return dump_speed(hparams, None, 16, Path(store), device)["frames_per_s"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda:0")
    parser.add_argument("--output", type=Path, default=Path("gpu_check.json"))
    parser.add_argument("--tiny", action="store_true", help="tiny sizes (the CPU test)")
    args = parser.parse_args()
    on_gpu = args.device.startswith("cuda")
    left_out = {
        precision: reason
        for precision in PRECISIONS
        if (reason := unsupported_precision(precision, args.device)) is not None
    }
    precisions = [precision for precision in PRECISIONS if precision not in left_out]
    splits = (
        {"train": 12, "valid": 4, "test": 4}
        if args.tiny
        else {"train": 64, "valid": 16, "test": 16}
    )
    batch_sizes, frames, steps = ([2], 50, 1) if args.tiny else ([8, 16, 32], 500, 10)
    report = {
        "device": torch.cuda.get_device_name(args.device) if on_gpu else "cpu",
        "torch": torch.__version__,
        "left_out": left_out,
    }
    with tempfile.TemporaryDirectory() as folder:
        report["recipe"] = check_recipe(args.device, precisions, Path(folder) / "runs", splits)
        teacher = Path(folder) / "runs" / f"{args.device.replace(':', '')}_fp32" / "blstm" / "1986"
        report["store_dump_frames_per_s"] = round(store_dump_speed(teacher, args.device, splits))
    report["training_frames_per_s"] = {
        f"{model} {precision} batch {batch_size}": round(
            training_speed(
                MODELS / f"{model}.yaml", args.device, precision, batch_size, frames, steps
            )
        )
        for model in ("blstm_paper", "vgg_paper")
        for precision in precisions
        for batch_size in batch_sizes
    }
    args.output.write_text(json.dumps(report, indent=2))
    print(f"device: {report['device']}, torch {report['torch']}")
    for precision, reason in left_out.items():
        print(f"left out: {precision} ({reason})")
    print("| run | model | mean epoch-1 loss | vs CPU fp32 | ok | seconds |")
    print("|---|---|---|---|---|---|")
    for name, models in report["recipe"].items():
        for model, run in models.items():
            print(
                f"| {name} | {model} | {run['train_loss']:.4f} | "
                f"{100 * run['relative_difference']:.2f}% | {run['ok']} | {run['seconds']} |"
            )
    print(f"\nteacher store dump: {report['store_dump_frames_per_s']:,} frames/s")
    print("\n| training | frames/s |\n|---|---|")
    for name, speed in report["training_frames_per_s"].items():
        print(f"| {name} | {speed:,} |")
    if not all(run["ok"] for models in report["recipe"].values() for run in models.values()):
        sys.exit("Some recipe runs failed the check (see the table).")


if __name__ == "__main__":
    main()

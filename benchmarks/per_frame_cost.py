#!/usr/bin/env python3
"""Measure the training and inference cost per frame of the models in hparams/models/, and what
it implies for one epoch of Switchboard 309 h (111 M frames of 10 ms).

    python benchmarks/per_frame_cost.py [--device cuda] [--precision fp16] [--num-labels 9000]

For each model: a training step (forward, backward, Adam) and a no-grad forward on random
features of ``--batch`` utterances x ``--frames`` frames, timed over ``--steps`` steps after a
warm-up, and the peak memory (CUDA allocator on GPU, process max RSS on CPU). Data loading and
feature extraction are not included: they run in dataloader workers, in parallel.
"""

import argparse
import json
import resource
import time
from pathlib import Path

import torch
from hyperpyyaml import load_hyperpyyaml

MODELS = Path(__file__).resolve().parents[1] / "hparams" / "models"
SWITCHBOARD_FRAMES = 309 * 3600 * 100


def build(name: str, num_features: int, num_labels: int) -> torch.nn.Module:
    with open(MODELS / f"{name}.yaml") as fin:
        return load_hyperpyyaml(fin, {"num_features": num_features, "num_labels": num_labels})[
            "model"
        ]


def peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def timed(step, steps: int, device: torch.device) -> float:
    """Seconds per call of ``step`` (after one warm-up call)."""
    step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return (time.perf_counter() - start) / steps


def measure(name: str, args) -> dict:
    device = torch.device(args.device)
    torch.manual_seed(0)
    model = build(name, args.num_features, args.num_labels).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    features = torch.randn(args.batch, args.frames, args.num_features, device=device)
    labels = torch.randint(args.num_labels, (args.batch, args.frames), device=device)
    dtype = {"fp32": None, "fp16": torch.float16, "bf16": torch.bfloat16}[args.precision]
    scaler = torch.amp.GradScaler(enabled=args.precision == "fp16" and device.type == "cuda")

    def autocast():
        return torch.autocast(device.type, dtype=dtype, enabled=dtype is not None)

    def train_step():
        optimizer.zero_grad()
        with autocast():
            logits = model(features)
        loss = torch.nn.functional.cross_entropy(logits.float().transpose(1, 2), labels)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()

    @torch.no_grad()
    def inference_step():
        with autocast():
            model(features)

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    model.train()
    train_s = timed(train_step, args.steps, device)
    model.eval()
    inference_s = timed(inference_step, args.steps, device)
    frames = args.batch * args.frames
    return {
        "model": name,
        "parameters": sum(p.numel() for p in model.parameters()),
        "train_ms_per_1k_frames": round(1000 * train_s / frames * 1000, 2),
        "inference_ms_per_1k_frames": round(1000 * inference_s / frames * 1000, 2),
        "train_hours_per_swbd_epoch": round(train_s / frames * SWITCHBOARD_FRAMES / 3600, 2),
        "teacher_dump_hours": round(inference_s / frames * SWITCHBOARD_FRAMES / 3600, 2),
        "peak_memory_mb": round(peak_memory_mb(device)),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="+", default=["blstm_paper", "vgg_paper"])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", choices=["fp32", "fp16", "bf16"], default="fp32")
    parser.add_argument("--num-features", type=int, default=40)
    parser.add_argument("--num-labels", type=int, default=9000)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--frames", type=int, default=500)
    parser.add_argument("--steps", type=int, default=3)
    args = parser.parse_args()
    setting = {k: v for k, v in vars(args).items() if k != "models"}
    if args.device == "cpu":
        setting["cpu_threads"] = torch.get_num_threads()
    else:
        setting["gpu"] = torch.cuda.get_device_name(args.device)
    print(json.dumps(setting))
    for name in args.models:
        print(json.dumps(measure(name, args)))


if __name__ == "__main__":
    main()

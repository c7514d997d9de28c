#!/usr/bin/env python3
"""Which speed-ups help the VGG student *train* on this CPU? The inference speed-ups of
``cnn_speedups.py`` that apply to training, each against plain eager PyTorch, interleaved on the
same batches and the same machine:

    python benchmarks/cnn_training_speedups.py [--pairs speechocean762] [--rounds 3]
        [--json benchmarks/results/cnn_training_speedups.json]

- ``eager``: the model as the recipes train it (the baseline);
- ``channels_last``: weights and maps in channels-last memory format;
- ``compiled``: ``torch.compile`` (inductor, dynamic shapes) of the model, as SpeechBrain's
  ``--compile --compile_module_keys=[model]`` does it; its compile time (the first forward and
  backward) is reported apart and not counted in frames/s;
- ``compiled_channels_last``: both.

(Folding batch norm into the convolutions is for inference only.) A training step is a forward,
the frame cross-entropy over the pair's labels on real frames, a backward and an Adam step, on
padded batches of 16 utterances of random order, lengths from the recipe's test set
(:mod:`student_speed`). Before timing, every variant takes one step from the same weights on the
same batch as eager (dropout off for that step): its loss must equal eager's (< 1e-4) and its
gradients too (< 1e-2 of the largest gradient). Prints a table
and writes the JSON; a variant that fails to run (a new utterance length can break a compiled
graph) is reported as failed, with its error. Run it on an idle machine.
"""

import copy
import random
import time
from typing import Callable, Dict, List, Tuple

import torch
from student_speed import (
    BATCH,
    NUM_FEATURES,
    PAIRS,
    build,
    flops_per_frame,
    run_students,
    spread,
    utterance_frames,
)

LOSS_TOLERANCE = 1e-4
# Relative to the largest gradient: measured 1.7e-3 for channels-last against eager (FSDD's CNN),
# as the convolutions' backward sums in another order and batch norm's backward, which subtracts
# per-channel means, amplifies that; a wrong variant is off by O(1).
GRADIENT_TOLERANCE = 1e-2


def training_step(model: torch.nn.Module, num_labels: int) -> Callable:
    """A ``step(features, frame counts, labels, dropout=True)`` that trains ``model`` once;
    returns the loss. Without dropout, the steps of the variants can be compared."""
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)

    def step(features, lengths, labels, dropout: bool = True) -> float:
        model.train()
        for module in model.modules():
            if isinstance(module, torch.nn.modules.dropout._DropoutNd):
                module.train(dropout)
        optimizer.zero_grad()
        logits = model(features, lengths.float() / features.shape[1])
        mask = torch.arange(features.shape[1])[None, :] < lengths[:, None]
        loss = torch.nn.functional.cross_entropy(logits[mask], labels[mask])
        loss.backward()
        optimizer.step()
        return loss.item()

    return step


def attempt(failures: Dict[str, str], name: str, call: Callable, *args, **kwargs):
    """``call(*args, **kwargs)``, or ``None`` with its error recorded in ``failures[name]``: a
    variant that fails (inductor can break on a new utterance length) is a result, not a crash."""
    try:
        return call(*args, **kwargs)
    except Exception as error:  # noqa: BLE001 (whatever torch raises is reported)
        failures[name] = f"{type(error).__name__}: {str(error).splitlines()[0]}"
        return None


def variants(
    model: torch.nn.Module, num_labels: int, example: Tuple
) -> Tuple[Dict[str, Callable], float, Dict[str, str]]:
    """Each variant's training step on its own copy of ``model``, checked against eager's step
    on ``example``; the seconds ``torch.compile`` took (first forward and backward); and the
    variants that failed to run, with their errors."""
    copies = {
        "eager": copy.deepcopy(model),
        "channels_last": copy.deepcopy(model).to(memory_format=torch.channels_last),
        "compiled": copy.deepcopy(model),
        "compiled_channels_last": copy.deepcopy(model).to(memory_format=torch.channels_last),
    }
    torch._dynamo.reset()
    for name in ("compiled", "compiled_channels_last"):
        copies[name] = torch.compile(copies[name], dynamic=True)
    steps = {name: training_step(module, num_labels) for name, module in copies.items()}
    losses, compile_seconds, failures = {}, 0.0, {}
    for name, step in steps.items():
        start = time.perf_counter()
        losses[name] = attempt(failures, name, step, *example, dropout=False)
        if name.startswith("compiled"):
            compile_seconds = max(compile_seconds, time.perf_counter() - start)
    reference = gradients(copies["eager"])
    for name, module in copies.items():
        if name in failures:
            continue
        difference = max(
            (gradient - reference[key]).abs().max().item()
            for key, gradient in gradients(module).items()
        )
        if abs(losses[name] - losses["eager"]) > LOSS_TOLERANCE or difference > GRADIENT_TOLERANCE:
            raise AssertionError(
                f"{name}: loss {losses[name]:.6f} against eager's {losses['eager']:.6f}, "
                f"gradients differ by up to {difference:.2e} (relative to the largest)"
            )
    for name, step in steps.items():  # warm-up with dropout: compiles the graphs timed
        if name not in failures:
            attempt(failures, name, step, *example)
    return steps, compile_seconds, failures


def gradients(module: torch.nn.Module) -> Dict[str, torch.Tensor]:
    """The gradients of the last step, by parameter name, relative to the largest of them."""
    module = getattr(module, "_orig_mod", module)  # a compiled module's original
    grads = {key: value.grad for key, value in module.named_parameters()}
    largest = max(grad.abs().max() for grad in grads.values())
    return {key: grad / largest for key, grad in grads.items()}


def training_batches(
    lengths: List[int], num_labels: int, generator: torch.Generator
) -> List[Tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Batches of ``BATCH`` utterances in random order (as training draws them), padded."""
    order = random.Random(0).sample(lengths, len(lengths))
    batches = []
    for first in range(0, len(order) - BATCH + 1, BATCH):
        counts = torch.tensor(order[first : first + BATCH])
        frames = int(counts.max())
        features = torch.randn(BATCH, frames, NUM_FEATURES, generator=generator)
        labels = torch.randint(num_labels, (BATCH, frames), generator=generator)
        batches.append((features, counts, labels))
    return batches


def frames_per_second(step: Callable, batches) -> float:
    """Real (unpadded) training frames per second of ``step`` over the batches."""
    start = time.perf_counter()
    for batch in batches:
        step(*batch)
    return sum(int(counts.sum()) for _, counts, _ in batches) / (time.perf_counter() - start)


def benchmark_student(pair: str, rounds: int, utterances: int) -> Dict:
    """Training frames/s of every variant of ``pair``'s student."""
    _, student_name, num_labels, manifest = PAIRS[pair]
    generator = torch.Generator().manual_seed(0)
    lengths = utterance_frames(manifest, utterances, generator)
    torch.manual_seed(0)
    model = build(student_name, num_labels)
    batches = training_batches(lengths, num_labels, generator)
    steps, compile_seconds, failures = variants(model, num_labels, batches[0])
    timings = {}
    for _ in range(rounds):
        for name, step in steps.items():  # interleaved: each sees the same machine state
            if name not in failures:
                speed = attempt(failures, name, frames_per_second, step, batches)
                timings.setdefault(name, []).append(speed)
    timings = {name: values for name, values in timings.items() if name not in failures}
    return {
        "model": student_name,
        "num_labels": num_labels,
        "batches": len(batches),
        "mflops_per_frame": flops_per_frame(model.eval()) / 1e6,
        "compile_seconds": compile_seconds,
        "training_frames_per_s": {name: spread(values) for name, values in timings.items()},
        "failed": failures,
    }


def table(results: Dict) -> str:
    """Markdown: training frames/s (median, range) of each variant, and its ratio to eager."""
    lines = [f"sgemm: {results['sgemm_gflops']:.1f} GFLOP/s on {results['threads']} threads", ""]
    for pair, measured in results["pairs"].items():
        fps = measured["training_frames_per_s"]
        lines += [
            f"### {pair}: {measured['model']} ({measured['mflops_per_frame']:.2f} MFLOP/frame, "
            f"{measured['num_labels']} labels, {measured['batches']} batches of {BATCH}, "
            f"compile {measured['compile_seconds']:.0f} s)",
            "",
            "| variant | training frames/s | / eager |",
            "|---|---|---|",
        ]
        for name, value in fps.items():
            lines.append(
                f"| {name} | {value['median']:,.0f} ({value['min']:,.0f}–{value['max']:,.0f}) | "
                f"{value['median'] / fps['eager']['median']:.2f} |"
            )
        lines += [f"| {name} | failed: {error} | |" for name, error in measured["failed"].items()]
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    run_students(
        __doc__.split("\n\n")[0],
        "benchmarks/results/cnn_training_speedups.json",
        benchmark_student,
        table,
    )

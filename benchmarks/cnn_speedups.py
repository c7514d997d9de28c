#!/usr/bin/env python3
"""Which inference speed-ups help the VGG student on this CPU? Each variant against plain eager
PyTorch, the variants interleaved, on the same lengths and the same machine:

    python benchmarks/cnn_speedups.py [--pairs fsdd speechocean762 paper] [--rounds 3]
        [--json benchmarks/results/cnn_speedups.json]

- ``eager``: the model as trained, in eval mode (the baseline);
- ``folded_bn``: batch norm folded into the convolution before it
  (:func:`blend_modules.models.vgg.fold_batch_norm`), one pass over each map fewer;
- ``channels_last``: weights and maps in channels-last memory format;
- ``folded_channels_last``: both;
- ``compiled``: ``torch.compile`` (inductor, dynamic shapes) of the folded model; its compile
  time is reported apart and not counted in frames/s;
- ``one_thread``: the eager model on 1 thread, against the others on all of them (what each of
  two streams served side by side would get).

Frames/s at batch 1 and batch 16 (padded batches of similar lengths), random features, lengths
from the recipe's test set (:mod:`student_speed`), the median and range over rounds; the largest
difference of each variant's output from eager's is checked (< 1e-4) before it is timed. Prints a
table and writes the JSON. Run it on an idle machine.
"""

import copy
import time
from typing import Callable, Dict, Tuple

import torch
from student_speed import (
    BATCH,
    NUM_FEATURES,
    PAIRS,
    build,
    flops_per_frame,
    frames_per_second,
    padded_batches,
    run_students,
    spread,
    utterance_frames,
)

from blend_modules.models.vgg import fold_batch_norm

TOLERANCE = 1e-4


def variants(model: torch.nn.Module, example) -> Tuple[Dict[str, Callable], float]:
    """Each variant as a ``run(features, frame counts)``, checked against eager on ``example``,
    and the seconds ``torch.compile`` took (its first call included)."""
    model = model.eval()
    folded = fold_batch_norm(model)
    channels_last = copy.deepcopy(model).to(memory_format=torch.channels_last)
    folded_channels_last = copy.deepcopy(folded).to(memory_format=torch.channels_last)
    torch._dynamo.reset()  # the previous pair's graphs would count against the recompile limit
    start = time.perf_counter()
    compiled = torch.compile(folded, dynamic=True)
    with torch.no_grad():
        compiled(*as_inputs(*example))
    compile_seconds = time.perf_counter() - start

    def on(module, threads=None):
        def run(features, lengths):
            previous = torch.get_num_threads()
            torch.set_num_threads(threads or previous)
            try:
                with torch.no_grad():
                    return module(*as_inputs(features, lengths))
            finally:
                torch.set_num_threads(previous)

        return run

    runs = {
        "eager": on(model),
        "folded_bn": on(folded),
        "channels_last": on(channels_last),
        "folded_channels_last": on(folded_channels_last),
        "compiled": on(compiled),
        "one_thread": on(model, threads=1),
    }
    reference = runs["eager"](*example)
    for name, run in runs.items():
        difference = (run(*example) - reference).abs().max().item()
        if difference > TOLERANCE:
            raise AssertionError(f"{name} differs from eager by {difference:.2e}")
    return runs, compile_seconds


def as_inputs(features: torch.Tensor, lengths: torch.Tensor):
    """Model inputs: features and lengths relative to the longest."""
    return features, lengths.float() / features.shape[1]


def benchmark_student(pair: str, rounds: int, utterances: int) -> Dict:
    """Frames/s of every variant of ``pair``'s student at batch 1 and 16."""
    _, student_name, num_labels, manifest = PAIRS[pair]
    lengths = utterance_frames(manifest, utterances, torch.Generator().manual_seed(0))
    torch.manual_seed(0)
    model = build(student_name, num_labels)
    example = (torch.randn(2, 120, NUM_FEATURES), torch.tensor([120, 77]))
    runs, compile_seconds = variants(model, example)
    batches = {"batch1": padded_batches(lengths, 1), "batch16": padded_batches(lengths, BATCH)}
    timings = {}
    for _ in range(rounds):
        for name, run in runs.items():  # interleaved: each sees the same machine state
            for batching, inputs in batches.items():
                fps = frames_per_second(run, inputs)
                timings.setdefault(name, {}).setdefault(batching, []).append(fps)
    return {
        "model": student_name,
        "mflops_per_frame": flops_per_frame(model.eval()) / 1e6,
        "compile_seconds": compile_seconds,
        "frames_per_s": {
            name: {batching: spread(values) for batching, values in measured.items()}
            for name, measured in timings.items()
        },
    }


def table(results: Dict) -> str:
    """Markdown: frames/s (median, range) of each variant, and its ratio to eager."""
    lines = [f"sgemm: {results['sgemm_gflops']:.1f} GFLOP/s on {results['threads']} threads", ""]
    for pair, measured in results["pairs"].items():
        fps = measured["frames_per_s"]
        lines += [
            f"### {pair}: {measured['model']} ({measured['mflops_per_frame']:.2f} MFLOP/frame, "
            f"compile {measured['compile_seconds']:.0f} s)",
            "",
            "| variant | batch 1 frames/s | / eager | batch 16 frames/s | / eager |",
            "|---|---|---|---|---|",
        ]
        for name, by_batch in fps.items():
            cells = []
            for batching in ("batch1", "batch16"):
                value = by_batch[batching]
                cells += [
                    f"{value['median']:,.0f} ({value['min']:,.0f}–{value['max']:,.0f})",
                    f"{value['median'] / fps['eager'][batching]['median']:.2f}",
                ]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    run_students(
        __doc__.split("\n\n")[0],
        "benchmarks/results/cnn_speedups.json",
        benchmark_student,
        table,
    )

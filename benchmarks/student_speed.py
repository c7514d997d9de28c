#!/usr/bin/env python3
"""The student's reason to exist, measured: teacher (BLSTM) against student (VGG CNN) per recipe.

    python benchmarks/student_speed.py [--pairs fsdd speechocean762 paper] [--rounds 3]
        [--json benchmarks/results/student_speed.json]

For each teacher/student pair of ``PAIRS`` (the shared model YAMLs the recipes include, at the
recipe's label count), in one run on the same machine:

- parameters and FLOPs per frame: ``torch.utils.flop_counter`` (convolutions, matrix products),
  plus 2 · 4 · H · (I + H) per frame, layer and direction for each ``nn.LSTM``, which it does
  not count;
- inference frames/s at batch 1 (utterances one by one) and batch 16 (padded batches of similar
  lengths), on utterance lengths drawn from the recipe's test manifest when it is prepared (else
  1–7 s), random features; PyTorch eager and onnxruntime (fp32) on the exported graph
  (:mod:`blend_modules.deploy.onnx_export`: normalisation + network + log-softmax);
- training frames/s (forward, backward, Adam step; batches of 16);
- peak memory of training: what building the model and one training step on the longest batch
  add to the peak RSS of a fresh process that has imported everything;
- achieved GFLOP/s (FLOPs per frame × frames/s) next to the machine's sgemm GFLOP/s, measured
  in the same run (the physical limit on this CPU);
- the CNN's streaming look-ahead (the right half of its receptive field, in frames and ms).

The models run interleaved, ``--rounds`` times; each number is the median over rounds with its
range. Run it on an idle machine: another job on the cores swings the LSTM timings most.
Prints a table and writes the JSON.
"""

import argparse
import csv
import json
import multiprocessing
import resource
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Callable, Dict, List

import torch
from speechbrain.processing.features import InputNormalization
from torch.utils.flop_counter import FlopCounterMode

from blend_modules.data.hparams import load_hparams_file
from blend_modules.deploy.onnx_export import LogPosteriors, write_exports
from blend_modules.models.streaming import StreamingCNN
from blend_modules.training.teacher import Teacher

REPO = Path(__file__).resolve().parents[1]
MODELS = REPO / "hparams" / "models"
NUM_FEATURES = 40
# pair -> (teacher YAML, student YAML, labels, test manifest whose durations give the lengths)
PAIRS = {
    "fsdd": ("blstm_small", "vgg_small", 31, "recipes/FSDD/Blend/results/prepared/test.csv"),
    "speechocean762": (
        "blstm_medium",
        "vgg_medium",
        620,
        "recipes/SpeechOcean762/Blend/results/prepared/test.csv",
    ),
    # the student at about a sixth of vgg_medium's FLOPs that the study trains (small_*)
    "speechocean762_narrow": (
        "blstm_medium",
        "vgg_narrow",
        620,
        "recipes/SpeechOcean762/Blend/results/prepared/test.csv",
    ),
    "paper": (
        "blstm_paper",
        "vgg_paper",
        9000,
        "recipes/SpeechOcean762/Blend/results/prepared/test.csv",
    ),
}
BATCH = 16


def build(name: str, num_labels: int) -> torch.nn.Module:
    """A model of the shared YAML ``name`` (random weights)."""
    overrides = {"num_features": NUM_FEATURES, "num_labels": num_labels}
    return load_hparams_file(MODELS / f"{name}.yaml", overrides)["model"]


def utterance_frames(manifest: str, count: int, generator: torch.Generator) -> List[int]:
    """``count`` utterance lengths in frames: durations of the manifest's utterances if it
    exists (the recipe is prepared), else uniform over 1–7 s."""
    path = REPO / manifest
    if path.is_file():
        with open(path, newline="") as csv_file:
            durations = [float(row["duration"]) for row in csv.DictReader(csv_file)]
    else:
        durations = (1 + 6 * torch.rand(count, generator=generator)).tolist()
    picks = torch.randint(len(durations), (count,), generator=generator).tolist()
    return [int(durations[i] * 100) + 1 for i in picks]


def lstm_flops_per_frame(model: torch.nn.Module) -> int:
    """What ``FlopCounterMode`` leaves out: 2 · 4 gates · H · (I + H) per frame, each LSTM."""
    return sum(
        2 * 4 * lstm.hidden_size * (lstm.input_size + lstm.hidden_size)
        for lstm in model.modules()
        if isinstance(lstm, torch.nn.LSTM)
    )


def flops_per_frame(model: torch.nn.Module, frames: int = 200) -> float:
    """Forward FLOPs per frame of one utterance of ``frames`` frames."""
    features = torch.randn(1, frames, NUM_FEATURES)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(features, torch.ones(1))
    return counter.get_total_flops() / frames + lstm_flops_per_frame(model)


def sgemm_gflops(size: int = 1024, repeats: int = 20) -> float:
    """fp32 matrix-product GFLOP/s of this machine, as torch runs it."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    torch.mm(a, b)
    start = time.perf_counter()
    for _ in range(repeats):
        torch.mm(a, b)
    return 2 * size**3 * repeats / (time.perf_counter() - start) / 1e9


def padded_batches(lengths: List[int], batch: int) -> List[torch.Tensor]:
    """Frame counts in batches of similar lengths (as the recipes' evaluation sorts them)."""
    ordered = sorted(lengths)
    return [torch.tensor(ordered[i : i + batch]) for i in range(0, len(ordered), batch)]


def frames_per_second(run: Callable[[torch.Tensor, torch.Tensor], object], batches) -> float:
    """Real frames per second of ``run(features, frame counts)`` over the batches."""
    inputs = [(torch.randn(len(b), int(b.max()), NUM_FEATURES), b) for b in batches]
    run(*inputs[0])  # warm-up
    start = time.perf_counter()
    for features, lengths in inputs:
        run(features, lengths)
    return sum(int(b.sum()) for b in batches) / (time.perf_counter() - start)


def deployed(model: torch.nn.Module) -> torch.nn.Module:
    """``model`` as exported: a global input normalisation (fitted on random features), the
    network, log-softmax; taking features and frame counts."""
    normalize = InputNormalization(norm_type="global")
    normalize(torch.randn(4, 100, NUM_FEATURES), torch.ones(4))
    return LogPosteriors(Teacher(normalize.eval(), model.eval(), {}, "benchmark")).eval()


def onnx_runner(model: torch.nn.Module, folder: Path):
    """An onnxruntime session of the exported ``model``, as a ``run(features, lengths)``."""
    import onnxruntime

    paths = {"torchscript": folder / "model.torchscript.pt", "onnx": folder / "model.onnx"}
    write_exports(model, paths, NUM_FEATURES)
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    session = onnxruntime.InferenceSession(
        str(paths["onnx"]), options, providers=["CPUExecutionProvider"]
    )

    def run(features, lengths):
        return session.run(None, {"features": features.numpy(), "lengths": lengths.numpy()})

    return run


def training_step(model: torch.nn.Module, num_labels: int):
    """A ``run(features, lengths)`` that does one training step (CE over real frames)."""
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)

    def run(features, lengths):
        model.train()
        optimizer.zero_grad()
        logits = model(features, lengths.float() / features.shape[1])
        mask = torch.arange(features.shape[1])[None, :] < lengths[:, None]
        labels = torch.randint(num_labels, mask.shape)
        loss = torch.nn.functional.cross_entropy(logits[mask], labels[mask])
        loss.backward()
        optimizer.step()

    return run


def peak_memory_mb(name: str, num_labels: int, lengths: List[int]) -> float:
    """Memory (MB) that building the model and one training step on a batch of ``lengths``
    add to a fresh process's peak RSS (beyond what its imports took)."""
    context = multiprocessing.get_context("spawn")
    with context.Pool(1) as pool:
        return pool.apply(_peak_memory_child, (name, num_labels, lengths))


def _peak_memory_child(name: str, num_labels: int, lengths: List[int]) -> float:
    baseline, peak = current_rss_mb(), [0.0]
    done = threading.Event()

    def sample():  # the RSS every millisecond: the imports' own peak does not hide the step's
        while not done.is_set():
            peak[0] = max(peak[0], current_rss_mb())
            time.sleep(0.001)

    sampler = threading.Thread(target=sample)
    sampler.start()
    model = build(name, num_labels)
    batch = torch.tensor(lengths)
    training_step(model, num_labels)(torch.randn(len(lengths), max(lengths), NUM_FEATURES), batch)
    done.set()
    sampler.join()
    return max(peak[0], current_rss_mb()) - baseline


def current_rss_mb() -> float:
    """This process's resident memory now (Linux)."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * resource.getpagesize() / 2**20


def spread(values: List[float]) -> Dict[str, float]:
    """Median and range of a measurement over rounds."""
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def benchmark_pair(pair: str, rounds: int, utterances: int, workdir: Path) -> Dict:
    """Every measurement of one teacher/student pair, the two models interleaved."""
    teacher_name, student_name, num_labels, manifest = PAIRS[pair]
    generator = torch.Generator().manual_seed(0)
    lengths = utterance_frames(manifest, utterances, generator)
    torch.manual_seed(0)
    models = {
        role: build(name, num_labels)
        for role, name in (("teacher", teacher_name), ("student", student_name))
    }
    exported = {role: deployed(model) for role, model in models.items()}
    runners = {}
    for role, model in exported.items():
        folder = workdir / f"{pair}_{role}"
        folder.mkdir(parents=True, exist_ok=True)
        runners[(role, "onnxruntime")] = onnx_runner(model, folder)
    results = {
        role: {
            "model": name,
            "parameters": sum(p.numel() for p in models[role].parameters()),
            "mflops_per_frame": flops_per_frame(models[role].eval()) / 1e6,
        }
        for role, name in (("teacher", teacher_name), ("student", student_name))
    }
    singles, batches = padded_batches(lengths, 1), padded_batches(lengths, BATCH)
    timings = {}
    for _ in range(rounds):
        for role in ("teacher", "student"):  # interleaved: both see the same machine state
            with torch.no_grad():
                eager = exported[role]
                timings.setdefault((role, "batch1"), []).append(frames_per_second(eager, singles))
                timings.setdefault((role, "batch16"), []).append(frames_per_second(eager, batches))
            onnx = runners[(role, "onnxruntime")]
            timings.setdefault((role, "onnx_batch1"), []).append(frames_per_second(onnx, singles))
            timings.setdefault((role, "onnx_batch16"), []).append(frames_per_second(onnx, batches))
            train = training_step(models[role], num_labels)
            timings.setdefault((role, "train16"), []).append(frames_per_second(train, batches[:4]))
    for (role, kind), values in timings.items():
        results[role][f"{kind}_frames_per_s"] = spread(values)
    for role, name in (("teacher", teacher_name), ("student", student_name)):
        results[role]["peak_memory_mb"] = peak_memory_mb(
            name, num_labels, [int(n) for n in batches[-1]]
        )
        for kind in ("batch1", "batch16"):
            fps = results[role][f"{kind}_frames_per_s"]["median"]
            results[role][f"{kind}_gflops"] = results[role]["mflops_per_frame"] * fps / 1e3
    streaming = StreamingCNN(models["student"])
    results["student"]["lookahead_frames"] = streaming.lookahead_frames
    results["student"]["lookahead_ms"] = 10 * streaming.lookahead_frames
    results["utterances"] = utterances
    results["lengths_from"] = manifest if (REPO / manifest).is_file() else "uniform 1-7 s"
    return results


def table(results: Dict) -> str:
    """Markdown: per pair, each measurement for teacher and student and their ratio."""
    rows = [
        ("parameters", lambda r: r["parameters"], "{:,.0f}"),
        ("MFLOP / frame", lambda r: r["mflops_per_frame"], "{:.2f}"),
        ("batch 1 frames/s", lambda r: r["batch1_frames_per_s"]["median"], "{:,.0f}"),
        ("batch 16 frames/s", lambda r: r["batch16_frames_per_s"]["median"], "{:,.0f}"),
        (
            "onnxruntime batch 1 frames/s",
            lambda r: r["onnx_batch1_frames_per_s"]["median"],
            "{:,.0f}",
        ),
        (
            "onnxruntime batch 16 frames/s",
            lambda r: r["onnx_batch16_frames_per_s"]["median"],
            "{:,.0f}",
        ),
        ("training frames/s", lambda r: r["train16_frames_per_s"]["median"], "{:,.0f}"),
        ("batch 1 GFLOP/s", lambda r: r["batch1_gflops"], "{:.1f}"),
        ("batch 16 GFLOP/s", lambda r: r["batch16_gflops"], "{:.1f}"),
        ("training peak memory (MB)", lambda r: r["peak_memory_mb"], "{:,.0f}"),
    ]
    lines = [f"sgemm: {results['sgemm_gflops']:.1f} GFLOP/s on {results['threads']} threads", ""]
    for pair, measured in results["pairs"].items():
        teacher, student = measured["teacher"], measured["student"]
        lines += [
            f"### {pair}: {teacher['model']} vs {student['model']} (lengths: {measured['lengths_from']})",
            "",
            "| | teacher | student | student / teacher |",
            "|---|---|---|---|",
        ]
        for label, value, style in rows:
            ratio = value(student) / value(teacher)
            lines.append(
                f"| {label} | {style.format(value(teacher))} | {style.format(value(student))} | {ratio:.2f} |"
            )
        lines += [
            f"| streaming look-ahead | whole utterance | {student['lookahead_ms']} ms | |",
            "",
        ]
    return "\n".join(lines)


def arguments(description: str, default_json: str) -> argparse.Namespace:
    """The command line of a benchmark over ``PAIRS``: pairs, rounds, lengths drawn, JSON."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--pairs", nargs="+", default=list(PAIRS), choices=list(PAIRS))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--utterances", type=int, default=48, help="lengths drawn per pair")
    parser.add_argument("--json", default=default_json)
    return parser.parse_args()


def run_students(
    description: str, default_json: str, measure: Callable[[str, int, int], Dict], table
) -> None:
    """The main of a benchmark of each pair's student: ``measure(pair, rounds, utterances)``
    per pair, the JSON written and ``table(results)`` printed."""
    args = arguments(description, default_json)
    results = {"threads": torch.get_num_threads(), "sgemm_gflops": sgemm_gflops(), "pairs": {}}
    for pair in args.pairs:
        results["pairs"][pair] = measure(pair, args.rounds, args.utterances)
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(results, indent=2))
    print(table(results))


def main():
    args = arguments(__doc__.split("\n\n")[0], "benchmarks/results/student_speed.json")
    results = {"threads": torch.get_num_threads(), "sgemm_gflops": sgemm_gflops(), "pairs": {}}
    with tempfile.TemporaryDirectory() as workdir:
        for pair in args.pairs:
            results["pairs"][pair] = benchmark_pair(
                pair, args.rounds, args.utterances, Path(workdir)
            )
    results["sgemm_gflops_after"] = sgemm_gflops()  # did the machine's speed change meanwhile?
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(results, indent=2))
    print(table(results))


if __name__ == "__main__":
    main()

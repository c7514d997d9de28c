#!/usr/bin/env python3
"""What batch-independent models cost: the BLSTM's backward direction reversed within each
utterance's length, against a padded and a packed ``nn.LSTM``; the teacher labelling padded
batches against one utterance at a time; the CNN's masked batch norm against no masking.

    python benchmarks/padding_invariance.py [--manifest results/prepared/train.csv] [--rounds 3]

Batches of ``--batch`` utterances whose lengths are drawn from the manifest's durations (or
uniformly between 1 and 7 s), random 40-dim features, CPU threads as torch sets them. The
variants run interleaved, ``--rounds`` times; printed: real (non-padding) frames per second,
median and range over rounds. Run it on an idle machine: other jobs swing LSTM timings most.
"""

import argparse
import csv
import json
import statistics
import time
from pathlib import Path

import torch
from speechbrain.nnet.linear import Linear
from speechbrain.nnet.RNN import LSTM

from blend_modules.data.hparams import load_hparams_file

MODELS = Path(__file__).resolve().parents[1] / "hparams" / "models"


class SpeechBrainBLSTM(torch.nn.Module):
    """The teacher as it was: SpeechBrain's LSTM, padded (no lengths) or packed (lengths)."""

    def __init__(self, num_features, num_labels, hidden_size, num_layers, packed):
        super().__init__()
        self.lstm = LSTM(
            hidden_size, input_size=num_features, num_layers=num_layers, bidirectional=True
        )
        self.output = Linear(num_labels, input_size=2 * hidden_size)
        self.packed = packed

    def forward(self, features, lengths):
        outputs, _ = self.lstm(features, lengths=lengths if self.packed else None)
        return self.output(outputs)


def build(name, num_labels):
    overrides = {"num_features": 40, "num_labels": num_labels}
    return load_hparams_file(MODELS / f"{name}.yaml", overrides)


def batch_lengths(args, generator):
    if args.manifest:
        with open(args.manifest, newline="") as manifest:
            durations = [float(row["duration"]) for row in csv.DictReader(manifest)]
        picks = torch.randint(len(durations), (args.batch,), generator=generator)
        return torch.tensor([int(durations[i] * 100) + 1 for i in picks])
    return torch.randint(100, 701, (args.batch,), generator=generator)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--teacher", default="blstm_small")
    parser.add_argument("--student", default="vgg_small")
    parser.add_argument("--num-labels", type=int, default=31)
    parser.add_argument("--manifest", help="SpeechBrain CSV whose durations give the lengths")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    generator = torch.Generator().manual_seed(0)
    lengths = batch_lengths(args, generator)
    frames = int(lengths.max())
    features = torch.randn(args.batch, frames, 40, generator=generator)
    relative = lengths.float() / frames
    labels = torch.randint(args.num_labels, (args.batch, frames), generator=generator)
    real_frames = int(lengths.sum())

    teacher = build(args.teacher, args.num_labels)
    size = {"hidden_size": teacher["hidden_size"], "num_layers": teacher["num_layers"]}
    models = {
        "blstm padded nn.LSTM (before)": SpeechBrainBLSTM(
            40, args.num_labels, packed=False, **size
        ),
        "blstm packed nn.LSTM": SpeechBrainBLSTM(40, args.num_labels, packed=True, **size),
        "blstm reversed within lengths (now)": teacher["model"],
        "cnn, no lengths: nothing masked": build(args.student, args.num_labels)["model"],
        "cnn with lengths: masked (now)": build(args.student, args.num_labels)["model"],
    }

    def train_step(name, model):
        model.train()
        masked = "with lengths" in name
        logits = model(features, relative if masked else None)
        torch.nn.functional.cross_entropy(logits.transpose(1, 2), labels).backward()

    @torch.no_grad()
    def label_batched():
        teacher["model"].eval()(features, relative)

    @torch.no_grad()
    def label_one_by_one():
        for i, length in enumerate(lengths.tolist()):
            teacher["model"].eval()(features[i : i + 1, :length], None)

    steps = {
        f"train: {name}": (lambda n=name, m=model: train_step(n, m))
        for name, model in models.items()
    }
    steps["label: teacher one utterance at a time (before)"] = label_one_by_one
    steps["label: teacher on padded batches (now)"] = label_batched
    for step in steps.values():  # warm-up
        step()
    rates = {name: [] for name in steps}
    for _ in range(args.rounds):
        for name, step in steps.items():
            start = time.perf_counter()
            step()
            rates[name].append(real_frames / (time.perf_counter() - start))
    setting = {
        "threads": torch.get_num_threads(),
        "batch": args.batch,
        "real_frames": real_frames,
        "padded_frames": args.batch * frames,
        "teacher": args.teacher,
        "student": args.student,
    }
    print(json.dumps(setting))
    print(f"| step | real frames/s, median | range over {args.rounds} rounds |")
    print("|---|---|---|")
    for name, values in rates.items():
        print(
            f"| {name} | {statistics.median(values):,.0f} | {min(values):,.0f}-{max(values):,.0f} |"
        )


if __name__ == "__main__":
    main()

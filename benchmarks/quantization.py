#!/usr/bin/env python3
"""Does int8 keep the accuracy? A trained frame-target model on its recipe's test set: PyTorch,
onnxruntime fp32 and onnxruntime int8 (dynamic quantisation of the weights,
``onnxruntime.quantization.quantize_dynamic``), frame accuracy and frames/s of each.

Run from a recipe folder with the command line the model trained with, after
``python export_model.py`` with the same (it reads ``<output_folder>/export/model.onnx``):

    python ../../../benchmarks/quantization.py hparams/cnn.yaml [--key=value ...]

Utterances one by one (batch 1, the streaming/deployment case), features computed once
beforehand, so the timings are the model's alone. Prints JSON; writes ``model.int8.onnx`` next
to the export.
"""

import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from blend_modules.data.datasets import dataio_prepare
from blend_modules.deploy.onnx_export import ONNX_FILE, LogPosteriors
from blend_modules.experiment import load_hparams
from blend_modules.training.teacher import load_teacher


def test_utterances(hparams):
    """(features, frame labels) of every test utterance, features as the recipe computes them."""
    hparams["targets"].prepare()
    dataset = next(iter(dataio_prepare(hparams)["test"].values()))
    utterances = []
    with dataset.output_keys_as(["sig", "frame_labels"]), torch.no_grad():
        for item in dataset:
            features = hparams["features"]["compute_features"](item["sig"][None])
            utterances.append((features, item["frame_labels"]))
    return utterances


def accuracy_and_speed(run, utterances):
    """Frame accuracy (%) and frames/s of ``run(features, lengths) -> log-posteriors``."""
    correct = frames = 0
    run(*utterances[0][0:1], torch.tensor([utterances[0][0].shape[1]]))  # warm-up
    start = time.perf_counter()
    predictions = [
        run(features, torch.tensor([features.shape[1]])).argmax(-1)[0] for features, _ in utterances
    ]
    seconds = time.perf_counter() - start
    for predicted, (_, labels) in zip(predictions, utterances):
        correct += int((predicted == labels).sum())
        frames += len(labels)
    return {"frame_acc": 100 * correct / frames, "frames_per_s": frames / seconds}


def onnx_run(path: Path):
    """An onnxruntime session as ``run(features, lengths) -> log-posteriors``."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def run(features, lengths):
        inputs = {"features": features.numpy(), "lengths": lengths.numpy()}
        return torch.from_numpy(session.run(None, inputs)[0])

    return run


def main(argv):
    from onnxruntime.quantization import QuantType, quantize_dynamic

    _, hparams, _, _ = load_hparams(argv)
    export = Path(hparams["output_folder"]) / "export"
    if not (export / ONNX_FILE).is_file():
        raise FileNotFoundError(f"{export / ONNX_FILE}: run export_model.py first.")
    quantize_dynamic(export / ONNX_FILE, export / "model.int8.onnx", weight_type=QuantType.QInt8)
    utterances = test_utterances(hparams)
    model = LogPosteriors(
        load_teacher(hparams["output_folder"], hparams["features"], hparams["targets"])
    )
    runs = {
        "pytorch": torch.no_grad()(model.eval()),
        "onnxruntime_fp32": onnx_run(export / ONNX_FILE),
        "onnxruntime_int8": onnx_run(export / "model.int8.onnx"),
    }
    results = {
        "run": hparams["output_folder"],
        "threads": torch.get_num_threads(),
        "utterances": len(utterances),
    }
    for round_number in range(3):  # interleaved rounds: frames/s as the median
        for name, run in runs.items():
            results.setdefault(name, []).append(accuracy_and_speed(run, utterances))
    for name in runs:
        rounds = results[name]
        results[name] = {
            "frame_acc": rounds[0]["frame_acc"],
            "frames_per_s": float(np.median([r["frames_per_s"] for r in rounds])),
            "frames_per_s_range": [
                min(r["frames_per_s"] for r in rounds),
                max(r["frames_per_s"] for r in rounds),
            ],
        }
    results["int8_minus_fp32_points"] = (
        results["onnxruntime_int8"]["frame_acc"] - results["pytorch"]["frame_acc"]
    )
    results["bytes"] = {
        p.name: p.stat().st_size for p in (export / ONNX_FILE, export / "model.int8.onnx")
    }
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    sys.path.insert(0, str(Path.cwd()))  # the recipe's own modules (its data preparation)
    main(sys.argv[1:])

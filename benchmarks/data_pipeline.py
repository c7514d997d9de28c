#!/usr/bin/env python3
"""Can the data pipeline feed a GPU? Training batches per second of the data loader alone (no
model): audio read as the recipes read it (whole FLAC files, or segments cut from SPHERE
conversations), padded into batches, per number of DataLoader workers; then the same with the
log mel filterbanks computed on the fly in the main process on CPU, as ``Brain.compute_forward``
computes them (on a GPU they run on the device instead). Reported in feature frames per second
(10 ms frames), the unit of the models' training speeds (benchmarks/gpu_check.py).

    python benchmarks/data_pipeline.py \
        --manifest recipes/SpeechOcean762/Blend/results/prepared/train.csv
    python benchmarks/data_pipeline.py --switchboard_miniature   # SPHERE segments
    [--workers 0 1 2 4] [--batch_size 16] [--epochs 2] [--output data_pipeline.json]

``--switchboard_miniature`` writes the tests' miniature Switchboard (2-channel PCM and µ-law
SPHERE conversations, tests/switchboard_tree.py) to a temporary folder and reads its training
segments. Run it on an idle machine: every worker is a process.
"""

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict

import torch
from speechbrain.dataio.batch import PaddedBatch
from speechbrain.dataio.dataset import DynamicItemDataset
from speechbrain.utils.data_pipeline import provides, takes

from blend_modules.data.audio import read_segment
from blend_modules.data.frames import frame_counts
from blend_modules.data.hparams import SHARED_HPARAMS, load_hparams_file
from blend_modules.data.manifests import check_manifest

REPO = Path(__file__).resolve().parents[1]


def audio_dataset(manifest: Path, sample_rate: int) -> DynamicItemDataset:
    """The manifest's utterances as the recipes read them: ``sig`` cut from its segment."""
    segments = check_manifest(manifest, sample_rate)
    dataset = DynamicItemDataset.from_csv(
        str(manifest), replacements={"data_root": str(manifest.parent)}
    )

    @takes("id")
    @provides("sig")
    def audio_pipeline(utt_id):
        return read_segment(*segments[utt_id])

    dataset.add_dynamic_item(audio_pipeline)
    dataset.set_output_keys(["id", "sig"])
    return dataset


def throughput(
    dataset, features: Dict, workers: int, batch_size: int, epochs: int, with_features: bool
) -> float:
    """Feature frames per second of ``epochs`` passes of a shuffled loader over ``dataset``."""
    loader = torch.utils.data.DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=True,
        num_workers=workers,
        collate_fn=PaddedBatch,
        persistent_workers=workers > 0,
        generator=torch.Generator().manual_seed(0),
    )
    frames, start = 0, time.perf_counter()
    for _ in range(epochs):
        for batch in loader:
            wavs, wav_lens = batch.sig
            if with_features:
                features["compute_features"](wavs)
            frames += int(frame_counts(wav_lens, wavs.shape[1], features).sum())
    return frames / (time.perf_counter() - start)


def switchboard_miniature(folder: Path, conversation_seconds: float) -> Path:
    """The tests' miniature Switchboard (4 conversations of ``conversation_seconds``),
    prepared; returns its training manifest."""
    sys.path.insert(0, str(REPO / "tests"))
    sys.path.insert(0, str(REPO / "recipes" / "Switchboard" / "Blend"))
    from switchboard_prepare import prepare_switchboard
    from switchboard_tree import make_switchboard_tree

    paths = make_switchboard_tree(folder / "ldc", conversation_seconds=conversation_seconds)
    paths = {key: str(path) for key, path in paths.items()}
    # 4 conversations: the tests' 5 dev segments, not s5c's 4000
    prepare_switchboard(**paths, save_folder=str(folder / "prep"), dev_utterances=5)
    return folder / "prep" / "train.csv"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--manifest", type=Path)
    parser.add_argument("--switchboard_miniature", action="store_true")
    parser.add_argument(
        "--conversation_seconds",
        type=float,
        default=300.0,
        help="length of the miniature's conversations (Switchboard's last about 5 minutes)",
    )
    parser.add_argument("--sample_rate", type=int, default=8000)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2, 4])
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--output", type=Path, default=Path("data_pipeline.json"))
    args = parser.parse_args()
    if (args.manifest is None) == (not args.switchboard_miniature):
        parser.error("give --manifest or --switchboard_miniature (one of them)")
    features = load_hparams_file(
        SHARED_HPARAMS / "features" / "fbank.yaml", {"sample_rate": args.sample_rate}
    )
    with tempfile.TemporaryDirectory() as folder:
        manifest = args.manifest or switchboard_miniature(Path(folder), args.conversation_seconds)
        dataset = audio_dataset(manifest, args.sample_rate)
        results = {"manifest": str(args.manifest or "switchboard miniature"), "rows": []}
        for workers in args.workers:
            row = {"workers": workers}
            for name, with_features in (("audio", False), ("audio_and_fbank", True)):
                row[f"{name}_frames_per_s"] = round(
                    throughput(
                        dataset, features, workers, args.batch_size, args.epochs, with_features
                    )
                )
            results["rows"].append(row)
    args.output.write_text(json.dumps(results, indent=2))
    print(f"{results['manifest']}: {len(dataset)} utterances, batch {args.batch_size}")
    print("| workers | audio only, frames/s | audio + Fbank (CPU), frames/s |\n|---|---|---|")
    for row in results["rows"]:
        print(
            f"| {row['workers']} | {row['audio_frames_per_s']:,} | "
            f"{row['audio_and_fbank_frames_per_s']:,} |"
        )


if __name__ == "__main__":
    main()

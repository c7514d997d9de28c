"""Speed-perturbed copies of a training set: more audio for a teacher to label.

A copy at factor f plays the utterance f times as fast (sox's and Kaldi's ``speed``: tempo and
pitch), ``n / f`` samples: the audio resampled from ``f · rate`` to ``rate``. Copies have no
forced alignment; blended from a teacher they learn from its soft labels alone
(``FrameTargets(soft_only_unaligned=True)``), while the hard term stays on the original audio.
For the hard-label control, each original's alignment stretched to its copy's frames (the
nearest original frame) gives the copy hard labels, so that a gain from blending is blending's,
not the extra audio's.
"""

import csv
import logging
from pathlib import Path
from typing import Sequence, Tuple

import numpy as np
import soundfile as sf
import torchaudio

from blend_modules.data.alignments import match_length, read_alignments, write_alignments
from blend_modules.data.audio import read_segment, write_flac
from blend_modules.data.frames import num_frames
from blend_modules.data.manifests import audio_path, check_manifest
from blend_modules.data.prepare_once import finish_preparation, is_prepared, start_preparation

logger = logging.getLogger(__name__)


def copy_id(utt_id: str, factor: float) -> str:
    """The ID of an utterance's copy at ``factor`` (Kaldi's ``sp0.9-<id>``)."""
    return f"sp{factor:g}-{utt_id}"


def stretched(labels: np.ndarray, factor: float, frames: int) -> np.ndarray:
    """Per-frame ``labels`` of an utterance, for its copy at ``factor`` with ``frames`` frames:
    each copy frame j takes the original frame nearest to j · factor."""
    nearest = np.minimum(np.round(np.arange(frames) * factor).astype(int), len(labels) - 1)
    return labels[nearest]


def speed_perturb(
    manifest,
    alignments,
    num_labels: int,
    factors: Sequence[float],
    output_folder,
    hop_ms: float = 10.0,
) -> Tuple[Path, Path]:
    """Write the copies of every utterance of ``manifest`` at each of ``factors`` (FLAC, each
    written under a temporary name and renamed) into ``output_folder``, with
    ``train.csv``: the original rows and the copies' (IDs :func:`copy_id`, durations and
    audio of the copies, other columns as the original's), and ``stretched.ali``: the
    originals' ``alignments`` (Kaldi text; matched to the feature frames) and the copies',
    stretched. Skipped when done with the same inputs and factors. Returns both paths."""
    manifest, output_folder = Path(manifest), Path(output_folder)
    options = {
        "manifest": str(manifest.resolve()),
        "manifest_bytes": manifest.stat().st_size,
        "alignments": str(Path(alignments).resolve()),
        "factors": list(factors),
    }
    paths = output_folder / "train.csv", output_folder / "stretched.ali"
    if is_prepared(output_folder, options):
        return paths
    start_preparation(output_folder)
    with open(manifest, newline="") as csv_file:
        rows = list(csv.DictReader(csv_file))
    if not rows:
        raise ValueError(f"{manifest}: no utterances to perturb.")
    sample_rate = sf.info(str(audio_path(rows[0]["wav"], manifest))).samplerate
    segments = check_manifest(manifest, sample_rate)
    hop = int(round(sample_rate * hop_ms / 1000))
    labels_of = read_alignments(alignments, num_labels)
    # the originals' audio by absolute path: $data_root would now mean the output folder
    rows_out = [{**row, "wav": str(audio_path(row["wav"], manifest).resolve())} for row in rows]
    alignments_out = {}
    for row in rows:
        utt_id, segment = row["ID"], segments[row["ID"]]
        if utt_id in labels_of:  # as the features' frames
            labels = match_length(labels_of[utt_id], num_frames(segment.num_samples, hop))
            alignments_out[utt_id] = labels
        samples = read_segment(*segment)
        for factor in factors:
            target = output_folder / f"{copy_id(utt_id, factor)}.flac"
            if not target.is_file():
                faster = torchaudio.functional.resample(
                    samples, round(sample_rate * factor), sample_rate
                )
                write_flac(target, faster.numpy(), sample_rate)
            copy_frames = sf.info(str(target)).frames
            rows_out.append(
                {
                    **row,
                    "ID": copy_id(utt_id, factor),
                    "duration": f"{copy_frames / sample_rate:.3f}",
                    "wav": str(target.resolve()),
                    **{column: "" for column in ("start", "stop", "channel") if column in row},
                }
            )
            if utt_id in labels_of:
                alignments_out[copy_id(utt_id, factor)] = stretched(
                    labels, factor, num_frames(copy_frames, hop)
                )
    with open(paths[0], "w", newline="") as csv_file:
        writer = csv.DictWriter(csv_file, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows_out)
    write_alignments(paths[1], alignments_out)
    logger.info(
        "%d utterances and %d speed-perturbed copies (factors %s) in %s.",
        len(rows),
        len(rows_out) - len(rows),
        list(factors),
        output_folder,
    )
    finish_preparation(output_folder, options)
    return paths

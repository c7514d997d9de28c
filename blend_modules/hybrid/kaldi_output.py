"""Kaldi's file formats written from Python: a model's pseudo-log-likelihoods (log posterior -
log prior per frame, see :mod:`blend_modules.hybrid.priors`) as an ark/scp for
``latgen-faster-mapped`` with the label counts, and hypotheses as Kaldi ``text`` and CTM."""

import logging
from pathlib import Path
from typing import Dict, Mapping, Tuple

import kaldiio
import numpy as np
import torch

from blend_modules.data.audio import read_segment
from blend_modules.data.manifests import Segment

logger = logging.getLogger(__name__)


def write_text(path, hypotheses: Mapping[str, Dict]) -> None:
    """Kaldi ``text``: ``<utterance-id> <words>`` per utterance, sorted by ID."""
    Path(path).write_text(
        "".join(
            f"{utt_id} {' '.join(hypotheses[utt_id]['words'])}\n" for utt_id in sorted(hypotheses)
        )
    )


def write_ctm(
    path,
    hypotheses: Mapping[str, Dict],
    segments: Mapping[str, Tuple[str, str, float]],
    frame_shift_s: float,
) -> None:
    """A CTM (``<recording> <channel> <start> <duration> <word>``) of the hypotheses;
    ``segments``: utterance ID -> (recording, channel, segment start in seconds). A word lasts
    from the frame its label is output until the next word's (or the utterance's end): times
    from the best path, not Kaldi's ``lattice-align-words``, so they are approximate."""
    lines = []
    for utt_id in sorted(hypotheses):
        best, (recording, channel, start) = hypotheses[utt_id], segments[utt_id]
        ends = best["word_frames"][1:] + [best["num_frames"]]
        for word, first, end in zip(best["words"], best["word_frames"], ends):
            begin_s = start + first * frame_shift_s
            lines.append(
                f"{recording} {channel} {begin_s:.2f} {max(end - first, 1) * frame_shift_s:.2f} "
                f"{word}\n"
            )
    Path(path).write_text("".join(lines))


def write_counts(path, counts: np.ndarray) -> None:
    """Label counts as a Kaldi text vector (``[ c0 c1 ... ]``, like ``ali_train_pdf.counts``)."""
    Path(path).write_text("[ " + " ".join(str(int(c)) for c in counts) + " ]\n")


@torch.no_grad()
def export_loglikes(
    model: torch.nn.Module,
    compute_features: torch.nn.Module,
    segments: Mapping[str, Segment],
    log_prior: np.ndarray,
    out_prefix,
    device: str = "cpu",
) -> Dict[str, int]:
    """Write ``out_prefix.ark`` and ``out_prefix.scp``: per utterance a ``[frames, labels]``
    float32 matrix of log softmax - log prior, the input ``latgen-faster-mapped`` expects
    (labels unseen in training are disabled by their prior, see :func:`priors.log_priors`).

    ``model`` maps ``([1, frames, features], lengths)`` to logits (a loaded ``Teacher``).
    Returns the number of utterances and frames written.
    """
    model = model.to(device).eval()
    log_prior = torch.from_numpy(log_prior).float().to(device)
    out_prefix = Path(out_prefix)
    out_prefix.parent.mkdir(parents=True, exist_ok=True)
    frames = 0
    with kaldiio.WriteHelper(f"ark,scp:{out_prefix}.ark,{out_prefix}.scp") as writer:
        for utt_id, segment in segments.items():
            wav = read_segment(*segment).to(device)[None]
            features = compute_features(wav)
            lengths = torch.tensor([features.shape[1]], device=device)
            log_posteriors = torch.log_softmax(model(features, lengths)[0].float(), dim=-1)
            writer(utt_id, (log_posteriors - log_prior).cpu().numpy())
            frames += features.shape[1]
    logger.info(
        "Wrote %s.ark/.scp on %s: %d utterances, %d frames.",
        out_prefix,
        device,
        len(segments),
        frames,
    )
    return {"utterances": len(segments), "frames": frames}

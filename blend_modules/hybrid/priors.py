"""Label priors for hybrid decoding: the pseudo-log-likelihood of label i at frame t is
``acoustic_scale · (log p(i | x_t) − log p(i))``, ``p(i)`` the label's frequency in the training
alignments. A label never seen in training is **disabled** (log-prior √FLT_MAX, as Kaldi nnet1's
``PdfPrior`` does: its pseudo-log-likelihood is hugely negative), never boosted by a floored
prior (a floor of 1e-10 would add +23 to its log-likelihood)."""

from typing import Iterable, Mapping

import numpy as np

DISABLED_LOG_PRIOR = float(np.sqrt(np.finfo(np.float32).max))


def label_counts(
    alignments: Mapping[str, np.ndarray], num_labels: int, utterances: Iterable[str] = None
) -> np.ndarray:
    """How often each label occurs in the alignments (of ``utterances`` only, if given)."""
    chosen = alignments.keys() if utterances is None else utterances
    counts = np.zeros(num_labels, dtype=np.int64)
    for utt_id in chosen:
        counts += np.bincount(alignments[utt_id], minlength=num_labels)
    return counts


def log_priors(counts: np.ndarray) -> np.ndarray:
    """Log label priors from training label counts, float32; a label never seen gets
    ``DISABLED_LOG_PRIOR``."""
    counts = np.asarray(counts, dtype=np.float64)
    if counts.sum() <= 0:
        raise ValueError("Label priors need training frames; the label counts are all zero.")
    seen = counts > 0
    priors = np.full(counts.shape, DISABLED_LOG_PRIOR)
    priors[seen] = np.log(counts[seen] / counts.sum())
    return priors.astype(np.float32)


def pseudo_log_likelihoods(
    log_posteriors: np.ndarray, label_log_priors: np.ndarray, acoustic_scale: float = 1.0
) -> np.ndarray:
    """``acoustic_scale · (log posterior − log prior)`` per frame and label, float32."""
    return (acoustic_scale * (log_posteriors - label_log_priors)).astype(np.float32)

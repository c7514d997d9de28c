"""Frame targets (the paper's hybrid setting): one label per 10 ms frame from Kaldi alignments
or a forced aligner; hard loss: frame cross-entropy; metrics: frame accuracy and, with a
decoder, WER.

A targets object, declared in YAML as ``targets``, owns what differs between frame and CTC
targets (:mod:`blend_modules.targets.ctc`): the dataset items and their checks, the hard loss,
the metrics and the key on which the best checkpoint is chosen. Blending is the same for both:
the soft term compares the student's and the teacher's per-frame distributions over the same
outputs.
"""

import logging
from pathlib import Path
from typing import Callable, Dict, List, Mapping, Optional

import numpy as np
import torch
from speechbrain.core import Stage
from speechbrain.utils.data_pipeline import provides, takes

from blend_modules.data.alignments import match_length, read_alignments
from blend_modules.data.atomic_files import file_sha256
from blend_modules.data.datasets import DatasetItems
from blend_modules.data.frames import num_frames
from blend_modules.data.manifests import check_column
from blend_modules.hybrid.decoder import WordDecoder
from blend_modules.hybrid.priors import label_counts, log_priors
from blend_modules.hybrid.scoring import HybridWordErrors
from blend_modules.targets.metrics import FrameAccuracy
from blend_modules.training.losses import frame_cross_entropy

logger = logging.getLogger(__name__)


UNALIGNED = -1  # the frame label of an utterance without alignment, scored in words only


MIN_ALIGNED_FRACTION = 0.5  # of a valid or test split's utterances, or it is refused


class FrameTargets:
    """Per-frame label ids from Kaldi alignments; hard loss: frame cross-entropy.

    An alignment must have as many frames as the features, except that ``frame_tolerance``
    frames of difference are absorbed (Kaldi's default ``--snip-edges=true`` gives
    ``1 + (samples - window) // hop`` frames, 2-3 fewer than SpeechBrain's centred STFT at
    25 ms / 10 ms; its frame t is centred 12.5 ms later than ours, so missing frames are
    filled by repeating the first label once and the last label for the rest, and extra
    frames are cut from the end). The number of utterances adjusted is logged.

    Arguments
    ---------
    num_labels : int
        Number of output labels (e.g. senones, pdf-ids).
    alignments : dict
        Split name -> alignment file (Kaldi text, ark or scp; see ``read_alignments``). One
        file may serve several splits: alignments of utterances outside a split are ignored.
    frame_tolerance : int
        Largest frame-count difference absorbed; more is an error.
    skip_unaligned : bool
        Utterances without alignment (e.g. the forced aligner failed on them) are left out of
        training and of frame accuracy, and counted, as Kaldi leaves them out; with a decoder,
        valid and test still decode and score them in words (``unaligned_utterances`` in the
        summary), so WER covers every utterance. If False they are an error.
    decoder : blend_modules.hybrid.decoder.WordDecoder
        Optional: decode valid and test to words (hybrid WER, from the manifests' ``words``),
        with label priors from the training alignments. An utterance with empty ``words``
        (silence only) is scored too: every word decoded in it is an insertion.
    scoring_filter : callable
        Maps a word list to the words scored, applied to references and hypotheses alike
        (e.g. the senone recipes' transcript rule,
        :func:`blend_modules.alignment.lexicon.normalize_words`); None scores them as written.
    soft_only_unaligned : bool
        Training utterances without alignment (e.g. speed-perturbed copies,
        :mod:`blend_modules.data.perturbation`) are neither refused nor left out but trained on
        with no hard target (every frame ``UNALIGNED``): only a teacher's soft term learns from
        them.
    valid_wer_every_epoch : bool
        With a decoder, also decode valid after every epoch (at every acoustic scale of the
        grid, the best reported as ``WER``): learning curves in words, in the training log and
        the summary's history. Checkpoints are still chosen on frame error.
    label_inventory : path
        Optional: the file that defines the labels (e.g. the senone recipes' ``labels.txt``,
        Kaldi's ``final.mdl``). Its SHA-256 joins :meth:`outputs`, so models of two inventories
        with the same number of labels are never blended or stored as one.
    """

    error_key = "frame_error"

    def __init__(
        self,
        num_labels: int,
        alignments: Mapping[str, str],
        frame_tolerance: int = 0,
        skip_unaligned: bool = False,
        decoder: WordDecoder = None,
        scoring_filter: Callable[[List[str]], List[str]] = None,
        soft_only_unaligned: bool = False,
        valid_wer_every_epoch: bool = False,
        label_inventory: str = None,
    ):
        self.num_labels = num_labels
        self.label_inventory = label_inventory
        self.soft_only_unaligned = soft_only_unaligned
        self.valid_wer_every_epoch = valid_wer_every_epoch
        self.alignments = dict(alignments)
        self.frame_tolerance = frame_tolerance
        self.skip_unaligned = skip_unaligned
        self.decoder = decoder
        self.scoring_filter = scoring_filter

    def prepare(self) -> None:
        """Build the decoding graph, if decoding (the alignments come with the corpus)."""
        if self.decoder is not None:
            self.decoder.prepare(self.num_labels)

    def prepare_outputs(self) -> None:
        """What :meth:`outputs` needs: nothing (the labels are given), no graph is built."""

    def outputs(self) -> Dict:
        """What the model's outputs mean (with ``label_inventory``, its SHA-256: the labels
        themselves); teacher and student must agree on it."""
        outputs = {"kind": "frame", "num_labels": self.num_labels}
        if self.label_inventory is not None:
            path = Path(self.label_inventory)
            if not path.is_file():
                raise FileNotFoundError(f"label_inventory {path} does not exist.")
            outputs["labels_sha256"] = file_sha256(path)
        return outputs

    def add_to_dataset(
        self, dataset, split: str, manifest: Path, num_samples: Dict[str, int], hop: int
    ) -> DatasetItems:
        """Check the split's alignments against its audio and add the ``frame_labels`` item.

        Raises ``ValueError`` naming the file and utterance for an utterance without alignment
        (unless ``skip_unaligned``) or a frame count further than ``frame_tolerance`` from
        the features'.
        """
        if split not in self.alignments:
            raise ValueError(f"No alignment file for split '{split}' ({manifest}) in alignments.")
        path = self.alignments[split]
        alignments = read_alignments(path, self.num_labels)
        labels, adjusted, unaligned = {}, 0, 0
        scores_words = self.decoder is not None and split != "train"
        # kept with no frame a target (-1): decoded and scored in words, or soft labels only
        keeps_unaligned = scores_words or (split == "train" and self.soft_only_unaligned)
        for utt_id, samples in num_samples.items():
            if utt_id not in alignments:
                if not (self.skip_unaligned or keeps_unaligned):
                    raise ValueError(
                        f"{manifest}: utterance '{utt_id}' has no alignment in {path}."
                    )
                if keeps_unaligned:
                    labels[utt_id] = np.full(num_frames(samples, hop), UNALIGNED, dtype=np.int64)
                unaligned += 1
                continue
            expected, aligned = num_frames(samples, hop), alignments[utt_id]
            if abs(len(aligned) - expected) > self.frame_tolerance:
                raise ValueError(
                    f"{path}: utterance '{utt_id}' has {len(aligned)} frames, its features "
                    f"{expected} ({samples} samples, hop {hop}; frame_tolerance "
                    f"{self.frame_tolerance})."
                )
            adjusted += len(aligned) != expected
            labels[utt_id] = match_length(aligned, expected)
        with_targets = {utt: frames for utt, frames in labels.items() if frames[0] != UNALIGNED}
        if split == "train" and self.decoder is not None:
            self.decoder.label_log_priors = log_priors(label_counts(with_targets, self.num_labels))
        if unaligned or adjusted:
            logger.info(
                "%s: %d of %d utterances without alignment in %s (%s), %d padded or trimmed "
                "by up to %d frames.",
                split,
                unaligned,
                len(num_samples),
                path,
                ("scored in words only" if scores_words else "soft labels only")
                if keeps_unaligned
                else "left out",
                adjusted,
                self.frame_tolerance,
            )
        if not with_targets:
            raise ValueError(f"{manifest}: no utterance has an alignment in {path}.")
        if split != "train" and len(with_targets) < MIN_ALIGNED_FRACTION * len(num_samples):
            raise ValueError(
                f"{manifest}: only {len(with_targets)} of its {len(num_samples)} utterances have "
                f"an alignment in {path}: {split} frame accuracy (and the checkpoint chosen on "
                f"it) would rest on those alone. Align the {split} data too."
            )

        @takes("id")
        @provides("frame_labels")
        def label_pipeline(utt_id):
            return torch.from_numpy(labels[utt_id])

        dataset.add_dynamic_item(label_pipeline)
        if self.decoder is not None and split != "train":
            check_column(
                dataset.data, manifest, "words", "the decoder scores words", allow_empty=True
            )
            return DatasetItems(["frame_labels", "words"], set(labels))
        return DatasetItems(["frame_labels"], set(labels))

    def hard_loss(self, logits: torch.Tensor, batch, lengths: torch.Tensor) -> torch.Tensor:
        """Frame cross-entropy, a mean over real frames."""
        return frame_cross_entropy(logits, batch.frame_labels.data, lengths)

    def metrics(self, stage, group_by: Optional[str] = None) -> "FrameAccuracy":
        """A fresh frame-accuracy tracker (cheap enough for training batches too), also per
        value of the batch item ``group_by`` if given; on test (and, if asked, on valid after
        every epoch), with a decoder, also WER."""
        words = None
        decodes = stage == Stage.TEST or (stage == Stage.VALID and self.valid_wer_every_epoch)
        if decodes and self.decoder is not None:
            words = HybridWordErrors(self.decoder, group_by, self.scoring_filter)
        return FrameAccuracy(group_by, words)

"""The metrics the targets report: frame accuracy (and per-utterance scores) for frame
targets, with WER through the hybrid decoder where one is declared; WER and CER for CTC targets;
each optionally per group of a manifest column (e.g. age group)."""

import csv
import logging
from collections import Counter, defaultdict
from pathlib import Path
from typing import Callable, Dict, List, Mapping, Optional, Tuple

import torch
from speechbrain.utils.metric_stats import ErrorRateStats

from blend_modules.data.datasets import batch_groups
from blend_modules.data.frames import frame_mask
from blend_modules.hybrid.scoring import HybridWordErrors

logger = logging.getLogger(__name__)


def write_utterance_scores(
    path: Path, frames: Mapping[str, Tuple[int, int]] = None, words: ErrorRateStats = None
) -> None:
    """``utterances_<set>.csv``: per test utterance, its frames and correctly labelled frames
    (``frames``: ID -> (correct, total)) and/or its word errors and reference words (``words``):
    the units a bootstrap over speakers resamples (:mod:`blend_modules.analysis.study`)."""
    rows = {}
    for utt_id, (correct, total) in (frames or {}).items():
        rows.setdefault(utt_id, {"ID": utt_id}).update(frames=total, correct_frames=correct)
    for score in words.scores if words is not None else []:
        rows.setdefault(score["key"], {"ID": score["key"]}).update(
            word_errors=score["num_edits"], reference_words=score["num_ref_tokens"]
        )
    columns = ["ID"] + (["frames", "correct_frames"] if frames else [])
    columns += ["word_errors", "reference_words"] if words is not None else []
    with open(path, "w", newline="") as csv_file:
        writer = csv.DictWriter(csv_file, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows.values())


class FrameAccuracy:
    """Frame accuracy over real frames with a label; with ``group_by`` (a manifest column such
    as ``age_group``) also per value of it, as ``frame_acc_<value>``; with ``words`` (a
    ``HybridWordErrors``) also the word error rate of the decoded frames, over every utterance:
    those without alignment (no frame labelled) count in WER only, as
    ``unaligned_utterances``."""

    def __init__(self, group_by: Optional[str] = None, words: HybridWordErrors = None):
        self.group_by, self.words = group_by, words
        self.correct, self.total = Counter(), Counter()  # by group; None: all utterances
        self.utterances = {}  # ID -> (correct, total) frames
        self.unaligned = 0

    def append(self, logits: torch.Tensor, batch, lengths: torch.Tensor) -> None:
        labels = batch.frame_labels.data
        mask = frame_mask(lengths, logits.shape[1]) & (labels >= 0)
        hits = ((logits.argmax(-1) == labels) & mask).sum(1).tolist()
        frames = mask.sum(1).tolist()
        for utt_id, group, utterance_hits, utterance_frames in zip(
            batch.id, batch_groups(batch, self.group_by), hits, frames
        ):
            self.utterances[utt_id] = (utterance_hits, utterance_frames)
            if not utterance_frames:  # not aligned: scored in words only
                self.unaligned += 1
                continue
            for key in {None, group}:
                self.correct[key] += utterance_hits
                self.total[key] += utterance_frames
        if self.words is not None:
            self.words.append(logits, batch, lengths)

    def summarize(self) -> Dict[str, float]:
        accuracy = self.correct[None] / max(self.total[None], 1)
        stats = {"frame_acc": accuracy, "frame_error": 1.0 - accuracy}
        for group in sorted(key for key in self.total if key is not None):
            stats[f"frame_acc_{group}"] = self.correct[group] / max(self.total[group], 1)
        if self.words is not None:
            stats["unaligned_utterances"] = self.unaligned
            stats.update(self.words.summarize())
        return stats

    def write(self, folder: Path, test_set: str) -> None:
        """``utterances_<test_set>.csv`` and, if decoding to words, ``wer_<test_set>.txt``."""
        words = None
        if self.words is not None:
            self.words.write(folder, test_set)
            words = self.words.best[None] if self.words.best else None  # summarized: decoded
        write_utterance_scores(folder / f"utterances_{test_set}.csv", self.utterances, words)


class WordErrorRates:
    """WER and CER with SpeechBrain's ``ErrorRateStats`` of the words ``decode(logits,
    lengths)`` gives, both sides through ``scoring_filter``; with ``group_by`` (a manifest
    column) also the WER per value of it, as ``WER_<value>``."""

    def __init__(
        self,
        decode: Callable[[torch.Tensor, torch.Tensor], List[List[str]]],
        scoring_filter: Callable[[List[str]], List[str]] = None,
        group_by: str = None,
    ):
        self.decode, self.scoring_filter, self.group_by = decode, scoring_filter, group_by
        self.wer, self.cer = ErrorRateStats(), ErrorRateStats(split_tokens=True)
        self.wer_by_group = defaultdict(ErrorRateStats)

    def append(self, logits: torch.Tensor, batch, lengths: torch.Tensor) -> None:
        hypotheses = self.decode(logits.detach(), lengths)
        references = [words.split() for words in batch.words]
        if self.scoring_filter is not None:
            hypotheses = [self.scoring_filter(words) for words in hypotheses]
            references = [self.scoring_filter(words) for words in references]
        self.wer.append(batch.id, hypotheses, references)
        self.cer.append(batch.id, hypotheses, references)
        if self.group_by:
            for utterance in zip(
                batch_groups(batch, self.group_by), batch.id, hypotheses, references
            ):
                group, utt_id, hypothesis, reference = utterance
                self.wer_by_group[group].append([utt_id], [hypothesis], [reference])

    def summarize(self) -> Dict[str, float]:
        stats = {"WER": self.wer.summarize("error_rate"), "CER": self.cer.summarize("error_rate")}
        for group in sorted(self.wer_by_group):
            stats[f"WER_{group}"] = self.wer_by_group[group].summarize("error_rate")
        return stats

    def write(self, folder: Path, test_set: str) -> None:
        """``wer_<test_set>.txt``: per-utterance alignments and totals, as SpeechBrain recipes
        write; ``utterances_<test_set>.csv``: each utterance's word errors."""
        with open(folder / f"wer_{test_set}.txt", "w") as wer_file:
            self.wer.write_stats(wer_file)
        write_utterance_scores(folder / f"utterances_{test_set}.csv", words=self.wer)

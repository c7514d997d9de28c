"""Scoring a frame-target model in words: WER over a set decoded by a
:class:`blend_modules.hybrid.decoder.WordDecoder`, at every acoustic scale of its grid on valid
(the best one is kept, :func:`fix_acoustic_scale`) and at the chosen scale on test, with
SpeechBrain's ``ErrorRateStats``."""

import logging
import time
from collections import defaultdict
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np
import torch
from speechbrain.utils.metric_stats import ErrorRateStats

from blend_modules.data.datasets import batch_groups
from blend_modules.hybrid.decoder import WordDecoder

logger = logging.getLogger(__name__)


class HybridWordErrors:
    """WER of a frame-target model on one set: keeps each utterance's scores, then decodes
    them with ``decoder`` at its acoustic scale, or at every scale of its grid if none is chosen
    yet (``summarize`` then reports the best as ``acoustic_scale``). With ``group_by`` also the
    WER per value of that batch item, as ``WER_<value>``; with ``scoring_filter`` (e.g. a GLM)
    hypotheses and references are both mapped before scoring. Also reported: ``OOV_rate``
    (scored reference words the decoder's vocabulary lacks: each is an error) and the time
    spent decoding. The reported scale's best paths stay in ``hypotheses`` (utterance ID -> the
    :meth:`WordDecoder.best_path` result)."""

    def __init__(
        self,
        decoder: WordDecoder,
        group_by: Optional[str] = None,
        scoring_filter: Callable[[List[str]], List[str]] = None,
    ):
        self.decoder, self.group_by, self.scoring_filter = decoder, group_by, scoring_filter
        self.utterances = []  # (id, scores, reference words, group)
        self.best, self.hypotheses = None, {}

    def append(self, logits: torch.Tensor, batch, lengths: torch.Tensor) -> None:
        log_posteriors = torch.log_softmax(logits.detach().float(), dim=-1).cpu().numpy()
        groups = batch_groups(batch, self.group_by)
        for row, (utt_id, words, group) in enumerate(zip(batch.id, batch.words, groups)):
            self.add(utt_id, log_posteriors[row, : lengths[row]], words.split(), group)

    def add(self, utt_id: str, scores: np.ndarray, reference: List[str], group=None) -> None:
        """One utterance's ``[frames × labels]`` scores and reference words (kept as scored:
        through the scoring filter, once for every scale)."""
        if self.scoring_filter is not None:
            reference = self.scoring_filter(reference)
        self.utterances.append((utt_id, scores, reference, group))

    def summarize(self) -> Dict[str, float]:
        chosen = self.decoder.acoustic_scale
        start, results = time.perf_counter(), {}

        def error_at(setting: Tuple[float, float]) -> float:
            return results[setting][0][None].summarize("error_rate")

        while True:
            if chosen is None:  # the whole grid (valid); the first of equally good settings wins
                settings = [
                    (scale, penalty)
                    for scale in self.decoder.acoustic_scales
                    for penalty in self.decoder.word_insertion_penalties
                ]
            else:
                settings = [(chosen, self.decoder.word_insertion_penalty)]
            for setting in settings:
                if setting not in results:
                    results[setting] = self.error_rates(*setting)
            best = min(settings, key=error_at)
            if chosen is not None or not self.decoder.widen_grid(best, error_at):
                break  # a chosen setting, or the best is inside the grid (or it may grow no more)
        seconds = time.perf_counter() - start
        settings = list(results)
        self.best, self.hypotheses = results[best]
        stats = {
            "WER": self.best[None].summarize("error_rate"),
            "acoustic_scale": best[0],
            "word_insertion_penalty": best[1],
        }
        references = [word for utterance in self.utterances for word in utterance[2]]
        vocabulary = set(self.decoder.words)
        stats["OOV_rate"] = sum(w not in vocabulary for w in references) / max(len(references), 1)
        # decoding speed (a measurement, on whatever else the machine is doing)
        frames = sum(len(utterance[1]) for utterance in self.utterances) * len(settings)
        stats["decoding_s"] = round(seconds, 2)
        stats["decoding_frames_per_s"] = round(frames / max(seconds, 1e-9))
        for group in sorted(key for key in self.best if key is not None):
            stats[f"WER_{group}"] = self.best[group].summarize("error_rate")
        if chosen is None:
            several_penalties = len(self.decoder.word_insertion_penalties) > 1
            for (scale, penalty), (by_group, _) in results.items():
                key = f"WER_at_scale_{scale:g}" + (f"_wip_{penalty:g}" if several_penalties else "")
                stats[key] = by_group[None].summarize("error_rate")
        return stats

    def error_rates(
        self, acoustic_scale: float, word_insertion_penalty: float = 0.0
    ) -> Tuple[Dict[Optional[str], ErrorRateStats], Dict]:
        """ErrorRateStats of every utterance (key None) and of each group at one acoustic scale
        and word insertion penalty, and each utterance's best path."""
        by_group, best_paths = defaultdict(ErrorRateStats), {}
        for utt_id, scores, reference, group in self.utterances:
            best = self.decoder.best_path(scores, acoustic_scale, word_insertion_penalty)
            del best["labels"]  # kept for every utterance and scale: the alignment is not needed
            best_paths[utt_id], words = best, best["words"]
            if self.scoring_filter is not None:
                words = self.scoring_filter(words)
            for key in {None, group}:
                by_group[key].append([utt_id], [words], [reference])
        return by_group, best_paths

    def write(self, folder: Path, test_set: str) -> None:
        """``wer_<test_set>.txt`` at the reported acoustic scale, as SpeechBrain recipes write."""
        if self.best is not None:
            with open(folder / f"wer_{test_set}.txt", "w") as wer_file:
                self.best[None].write_stats(wer_file)


def fix_acoustic_scale(decoder: WordDecoder, valid_stats: Dict) -> Dict[str, bool]:
    """Fix the decoder's acoustic scale and word insertion penalty to those chosen on valid
    (``valid_stats`` of a :class:`HybridWordErrors` over the grid). Returns, for the summary,
    whether each lies on an edge of a grid of several values (``acoustic_scale_at_grid_edge``,
    ``word_insertion_penalty_at_grid_edge``): the grid may have cut the best setting off, and
    a warning says so."""
    decoder.acoustic_scale = valid_stats["acoustic_scale"]
    decoder.word_insertion_penalty = valid_stats.get("word_insertion_penalty", 0.0)
    logger.info(
        "Acoustic scale %g and word insertion penalty %g, chosen on valid from %s and %s.",
        decoder.acoustic_scale,
        decoder.word_insertion_penalty,
        decoder.acoustic_scales,
        decoder.word_insertion_penalties,
    )
    at_edge = {}
    penalties = decoder.word_insertion_penalties
    for name, value, grid in (
        ("acoustic_scale", decoder.acoustic_scale, decoder.acoustic_scales),
        ("word_insertion_penalty", decoder.word_insertion_penalty, penalties),
    ):
        at_edge[f"{name}_at_grid_edge"] = len(grid) > 1 and value in (min(grid), max(grid))
        if at_edge[f"{name}_at_grid_edge"]:
            logger.warning(
                "The %s chosen on valid, %g, is at the edge of the grid %s: a wider grid may "
                "decode better.",
                name.replace("_", " "),
                value,
                list(grid),
            )
    return at_edge

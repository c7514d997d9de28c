"""Hybrid decoding: a frame-target model's pseudo-log-likelihoods (see
:mod:`blend_modules.priors`) to words with a WFST decoder.

A decoding graph is a ``kaldifst.StdVectorFst`` whose input labels are the model's label ids + 1
(0 is epsilon) and whose output labels are word ids (1-based into a word list); kaldi-decoder's
``FasterDecoder`` (Kaldi's) finds its best path through a ``[frames × labels]`` matrix
(``DecodableCtc`` is a plain matrix decodable: log-likelihood(t, i) = ``matrix[t, i − 1]``).
"""

import logging
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import kaldi_decoder
import kaldifst
import numpy as np
import torch
from speechbrain.utils.checkpoints import mark_as_loader, mark_as_saver, register_checkpoint_hooks
from speechbrain.utils.distributed import run_on_main
from speechbrain.utils.metric_stats import ErrorRateStats

from blend_modules.data import batch_groups
from blend_modules.files import file_sha256
from blend_modules.preparation import finish_preparation, is_prepared, start_preparation
from blend_modules.priors import pseudo_log_likelihoods

logger = logging.getLogger(__name__)

GRAPH_FILE, WORDS_FILE, GRAPH_OPTIONS_FILE = "graph.fst", "words.txt", "graph_options.json"


def decode(
    graph: kaldifst.StdVectorFst,
    loglikes: np.ndarray,
    beam: float = 16.0,
    max_active: int = 7000,
) -> Dict:
    """The best path of ``graph`` through the pseudo-log-likelihoods ``[frames × labels]``:
    ``word_ids`` (1-based), per-frame ``labels`` (0-based model labels, the Viterbi alignment),
    ``cost`` and whether it ``reached_final`` (else the best partial path is returned)."""
    options = kaldi_decoder.FasterDecoderOptions(beam=beam, max_active=max_active)
    decoder = kaldi_decoder.FasterDecoder(graph, options)
    decoder.decode(kaldi_decoder.DecodableCtc(np.ascontiguousarray(loglikes, dtype=np.float32)))
    reached_final = decoder.reached_final()
    ok, best = decoder.get_best_path()
    if not ok:
        return {"word_ids": [], "labels": [], "cost": float("inf"), "reached_final": False}
    ok, input_labels, output_labels, weight = kaldifst.get_linear_symbol_sequence(best)
    return {
        "word_ids": list(output_labels),
        "labels": [label - 1 for label in input_labels],
        "cost": float(weight.value1 + weight.value2),  # graph + acoustic
        "reached_final": reached_final,
    }


@register_checkpoint_hooks
class WordDecoder:
    """Words from a frame-target model's log-posteriors: pseudo-log-likelihoods (label priors
    from the training alignments) decoded against a graph built once and cached, at an
    acoustic scale chosen on valid from a grid.

    Everything decoding needs (graph, words, priors, acoustic scale) is saved and loaded as one
    file by SpeechBrain's checkpoint hooks: the inference folder's ``decoder.ckpt``.

    Arguments
    ---------
    graph : callable
        Returns ``(graph, words)``: the decoding graph (input labels = model label + 1) and the
        word list its output labels index (1-based); e.g. ``!name:fsdd_prepare.digit_graph``
        with its arguments. Called once; the result is cached in ``cache_folder`` and rebuilt
        when the callable or the content of a file it is given changes. None for a decoder
        that is loaded.
    cache_folder : path
        Where ``graph.fst``, ``words.txt`` and ``graph_options.json`` are kept.
    acoustic_scales : sequence of float
        The grid the acoustic scale is chosen from, on valid (``recipe.fit_and_test``).
    beam, max_active : float, int
        Kaldi ``FasterDecoder`` pruning.
    """

    def __init__(
        self,
        graph: Callable[[], Tuple[kaldifst.StdVectorFst, List[str]]] = None,
        cache_folder=None,
        acoustic_scales: Sequence[float] = (0.05, 0.1, 0.2, 0.5, 1.0),
        beam: float = 16.0,
        max_active: int = 7000,
    ):
        self.build_graph, self.cache_folder = graph, cache_folder
        self.acoustic_scales = [float(scale) for scale in acoustic_scales]
        self.beam, self.max_active = beam, max_active
        self.graph, self.words = None, None
        self.label_log_priors = None  # set from the training alignments (FrameTargets)
        self.acoustic_scale = None  # chosen on valid

    def prepare(self, num_labels: int) -> None:
        """Build the graph (main process, once) and load it; ``ValueError`` naming the graph
        file if its input labels go beyond the model's ``num_labels`` outputs."""
        run_on_main(self._build)
        folder = Path(self.cache_folder)
        self.graph = kaldifst.StdVectorFst.read(str(folder / GRAPH_FILE))
        self.words = (folder / WORDS_FILE).read_text(encoding="utf-8").split("\n")[:-1]
        largest = max(
            (
                arc.ilabel
                for state in kaldifst.StateIterator(self.graph)
                for arc in kaldifst.ArcIterator(self.graph, state)
            ),
            default=0,
        )
        if largest > num_labels:  # input label = model label + 1
            raise ValueError(
                f"{folder / GRAPH_FILE}: the graph's input labels reach model label {largest - 1}, "
                f"but the model has {num_labels} outputs: graph and labels do not match."
            )

    def _build(self) -> None:
        folder, options = Path(self.cache_folder), {"graph": describe_callable(self.build_graph)}
        if is_prepared(folder, options, GRAPH_OPTIONS_FILE):
            return
        start_preparation(folder, GRAPH_OPTIONS_FILE)
        graph, words = self.build_graph()
        graph.write(str(folder / GRAPH_FILE))
        (folder / WORDS_FILE).write_text("".join(f"{word}\n" for word in words))
        logger.info(
            "Decoding graph in %s: %d states, %d words.",
            folder / GRAPH_FILE,
            graph.num_states,
            len(words),
        )
        finish_preparation(folder, options, GRAPH_OPTIONS_FILE)

    def transcribe(self, log_posteriors: np.ndarray, acoustic_scale: float = None) -> List[str]:
        """The words of one utterance's ``[frames × labels]`` log-posteriors, at
        ``acoustic_scale`` (default: the chosen one)."""
        scale = self.acoustic_scale if acoustic_scale is None else acoustic_scale
        loglikes = pseudo_log_likelihoods(log_posteriors, self.label_log_priors, scale)
        best = decode(self.graph, loglikes, self.beam, self.max_active)
        return [self.words[word_id - 1] for word_id in best["word_ids"]]

    @mark_as_saver
    def _save(self, path) -> None:
        with tempfile.TemporaryDirectory() as folder:  # kaldifst reads and writes files only
            self.graph.write(str(Path(folder) / GRAPH_FILE))
            graph_bytes = (Path(folder) / GRAPH_FILE).read_bytes()
        state = {
            "graph": graph_bytes,
            "words": self.words,
            "label_log_priors": torch.from_numpy(self.label_log_priors),
            "acoustic_scale": self.acoustic_scale,
            "beam": self.beam,
            "max_active": self.max_active,
        }
        torch.save(state, path)

    @mark_as_loader
    def _load(self, path, end_of_epoch: bool = False) -> None:
        del end_of_epoch  # the same decoder at any point
        state = torch.load(path)
        with tempfile.TemporaryDirectory() as folder:
            (Path(folder) / GRAPH_FILE).write_bytes(state["graph"])
            self.graph = kaldifst.StdVectorFst.read(str(Path(folder) / GRAPH_FILE))
        self.words, self.label_log_priors = state["words"], state["label_log_priors"].numpy()
        self.acoustic_scale, self.beam = state["acoustic_scale"], state["beam"]
        self.max_active = state["max_active"]


def describe_callable(function: Callable) -> Dict:
    """A callable's name and arguments, files among them by content (SHA-256)."""
    arguments = {}
    for name, value in getattr(function, "keywords", {}).items():
        is_file = isinstance(value, (str, Path)) and Path(value).is_file()
        arguments[name] = file_sha256(value) if is_file else repr(value)
    target = getattr(function, "func", function)
    return {"function": f"{target.__module__}.{target.__qualname__}", "arguments": arguments}


class HybridWordErrors:
    """WER of a frame-target model on one set: keeps each utterance's log-posteriors, then
    decodes them with ``decoder`` at its acoustic scale, or at every scale of its grid if none
    is chosen yet (``summarize`` then reports the best as ``acoustic_scale``). With
    ``group_by`` also the WER per value of that batch item, as ``WER_<value>``. Also reported:
    ``OOV_rate`` (reference words the decoder's vocabulary lacks: each is an error) and the
    time spent decoding."""

    def __init__(self, decoder: WordDecoder, group_by: Optional[str] = None):
        self.decoder, self.group_by = decoder, group_by
        self.utterances = []  # (id, log-posteriors, reference words, group)
        self.best = None

    def append(self, logits: torch.Tensor, batch, lengths: torch.Tensor) -> None:
        log_posteriors = torch.log_softmax(logits.detach().float(), dim=-1).cpu().numpy()
        groups = batch_groups(batch, self.group_by)
        for row, (utt_id, words, group) in enumerate(zip(batch.id, batch.words, groups)):
            self.utterances.append(
                (utt_id, log_posteriors[row, : lengths[row]], words.split(), group)
            )

    def summarize(self) -> Dict[str, float]:
        chosen = self.decoder.acoustic_scale
        scales = self.decoder.acoustic_scales if chosen is None else [chosen]
        start = time.perf_counter()
        results = {scale: self.error_rates(scale) for scale in scales}
        seconds = time.perf_counter() - start
        best_scale = min(scales, key=lambda scale: results[scale][None].summarize("error_rate"))
        self.best = results[best_scale]
        stats = {"WER": self.best[None].summarize("error_rate"), "acoustic_scale": best_scale}
        references = [word for utterance in self.utterances for word in utterance[2]]
        vocabulary = set(self.decoder.words)
        stats["OOV_rate"] = sum(w not in vocabulary for w in references) / max(len(references), 1)
        # decoding speed (a measurement, on whatever else the machine is doing)
        frames = sum(len(utterance[1]) for utterance in self.utterances) * len(scales)
        stats["decoding_s"] = round(seconds, 2)
        stats["decoding_frames_per_s"] = round(frames / max(seconds, 1e-9))
        for group in sorted(key for key in self.best if key is not None):
            stats[f"WER_{group}"] = self.best[group].summarize("error_rate")
        if chosen is None:
            for scale, by_group in results.items():
                stats[f"WER_at_scale_{scale:g}"] = by_group[None].summarize("error_rate")
        return stats

    def error_rates(self, acoustic_scale: float) -> Dict[Optional[str], ErrorRateStats]:
        """ErrorRateStats of every utterance (key None) and of each group at one scale."""
        by_group = defaultdict(ErrorRateStats)
        for utt_id, log_posteriors, reference, group in self.utterances:
            words = self.decoder.transcribe(log_posteriors, acoustic_scale)
            for key in {None, group}:
                by_group[key].append([utt_id], [words], [reference])
        return by_group

    def write(self, folder: Path, test_set: str) -> None:
        """``wer_<test_set>.txt`` at the reported acoustic scale, as SpeechBrain recipes write."""
        if self.best is not None:
            with open(folder / f"wer_{test_set}.txt", "w") as wer_file:
                self.best[None].write_stats(wer_file)

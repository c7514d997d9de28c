"""Hybrid decoding: a frame-target model's pseudo-log-likelihoods (see
:mod:`blend_modules.hybrid.priors`) to words with a WFST decoder.

A decoding graph is a ``kaldifst.StdVectorFst`` whose input labels are the model's label ids + 1
(0 is epsilon) and whose output labels are word ids (1-based into a word list); kaldi-decoder's
``FasterDecoder`` (Kaldi's) finds its best path through a ``[frames × labels]`` matrix
(``DecodableCtc`` is a plain matrix decodable: log-likelihood(t, i) = ``matrix[t, i − 1]``).
"""

import logging
import tempfile
from collections import Counter
from pathlib import Path
from typing import Callable, Dict, List, Sequence, Tuple

import kaldi_decoder
import kaldifst
import numpy as np
import torch
from speechbrain.utils.checkpoints import mark_as_loader, mark_as_saver, register_checkpoint_hooks
from speechbrain.utils.distributed import run_on_main

from blend_modules.hybrid.graph_cache import GRAPH_FILE, build_cached_graph, read_cached_graph
from blend_modules.hybrid.kaldi_model import read_graph, read_transition_pdfs, read_word_symbols
from blend_modules.hybrid.priors import pseudo_log_likelihoods

logger = logging.getLogger(__name__)


def decode(
    graph: kaldifst.StdFst,
    loglikes: np.ndarray,
    beam: float = 16.0,
    max_active: int = 7000,
    input_labels: np.ndarray = None,
    chunk_frames: int = 200,
) -> Dict:
    """The best path of ``graph`` through the pseudo-log-likelihoods ``[frames × labels]``:
    ``word_ids`` (1-based), ``word_frames`` (the frame at which each word's label is output:
    where the graph put it, near the word's start; Kaldi's best path merges epsilon arcs into
    their neighbours, which may move it a frame), per-frame ``labels`` (the graph's input
    labels − 1: the Viterbi alignment) and their ``num_frames``, ``cost`` and whether it
    ``reached_final`` (else the best partial path is returned).

    With ``input_labels`` (graph input label i + 1 scores as model label ``input_labels[i]``,
    e.g. Kaldi's transition-id -> pdf table) the matrix is expanded to the graph's labels
    ``chunk_frames`` frames at a time.
    """
    options = kaldi_decoder.FasterDecoderOptions(beam=beam, max_active=max_active)
    decoder = kaldi_decoder.FasterDecoder(graph, options)
    loglikes = np.asarray(loglikes, dtype=np.float32)
    if input_labels is None:
        decoder.decode(kaldi_decoder.DecodableCtc(np.ascontiguousarray(loglikes)))
    else:
        decoder.init_decoding()
        for start in range(0, len(loglikes), chunk_frames):
            chunk = np.ascontiguousarray(loglikes[start : start + chunk_frames][:, input_labels])
            decoder.advance_decoding(kaldi_decoder.DecodableCtc(chunk, offset=start))
    reached_final = decoder.reached_final()
    ok, best = decoder.get_best_path()
    if not ok:
        return {
            "word_ids": [],
            "word_frames": [],
            "labels": [],
            "num_frames": 0,
            "cost": float("inf"),
            "reached_final": False,
        }
    _, _, _, weight = kaldifst.get_linear_symbol_sequence(best)
    labels, word_ids, word_frames = [], [], []
    for ilabel, olabel in best_path_arcs(best):
        if olabel:
            word_ids.append(olabel)
            word_frames.append(len(labels))
        if ilabel:
            labels.append(ilabel - 1)
    return {
        "word_ids": word_ids,
        "word_frames": word_frames,
        "labels": labels,
        "num_frames": len(labels),
        "cost": float(weight.value1 + weight.value2),  # graph + acoustic
        "reached_final": reached_final,
    }


def best_path_arcs(path: kaldifst.Lattice) -> List[Tuple[int, int]]:
    """(input, output) labels of a linear lattice's arcs from its start state, in order
    (read from its text form: kaldifst iterates the arcs of a lattice only privately)."""
    arcs = {}
    for line in path.to_str().splitlines():
        fields = line.split()
        if len(fields) >= 4:
            arcs[int(fields[0])] = (int(fields[1]), int(fields[2]), int(fields[3]))
    sequence, state = [], path.start
    while state in arcs:
        state, ilabel, olabel = arcs[state]
        sequence.append((ilabel, olabel))
    return sequence


def with_word_penalty(
    graph: kaldifst.StdVectorFst, penalty: float, num_words: int
) -> kaldifst.StdVectorFst:
    """``graph`` in which every arc that outputs one of its ``num_words`` words costs ``penalty``
    more: composed (OpenFst, in C++) with a one-state transducer that passes each word at that
    cost, six times faster than rewriting the arcs from Python on the speechocean762 graph
    (1.9 M states: 5 s against 31 s)."""
    penalties = kaldifst.StdVectorFst()
    penalties.start = penalties.add_state()
    penalties.set_final(penalties.start, 0.0)
    for word_id in range(1, num_words + 1):
        penalties.add_arc(
            penalties.start, kaldifst.StdArc(word_id, word_id, penalty, penalties.start)
        )
    kaldifst.arcsort(penalties, sort_type="ilabel")  # compose's matcher needs one side sorted
    penalised = kaldifst.compose(graph, penalties)
    kaldifst.arcsort(penalised, sort_type="ilabel")
    return penalised


@register_checkpoint_hooks
class WordDecoder:
    """Words from a frame-target model's log-posteriors: pseudo-log-likelihoods (label priors
    from the training alignments) decoded against a graph built once and cached, at an
    acoustic scale and a word insertion penalty chosen together on valid from a grid, as
    Kaldi's ``score.sh`` chooses the LM weight and penalty on dev.

    Everything decoding needs (graph, words, priors, acoustic scale, penalty) is saved and
    loaded as one file by SpeechBrain's checkpoint hooks: the inference folder's
    ``decoder.ckpt``.

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
        The grid the acoustic scale is chosen from, on valid
        (``blend_modules.experiment.test_and_summarize``).
    word_insertion_penalties : sequence of float
        The grid of word insertion penalties (a cost added to every word the graph outputs,
        on the graph's scale, as ``lattice-add-penalty``) chosen with the acoustic scale.
    beam, max_active : float, int
        Kaldi ``FasterDecoder`` pruning.
    grid_extensions : int
        How many values either grid may gain beyond each of its edges (:meth:`widen_grid`):
        when the best setting on valid lies on an edge, the grid goes on past it by its own
        step (a factor for the scale, a difference for the penalty) until the best is inside
        it or this many values were added there. 0: the grids as given.
    """

    def __init__(
        self,
        graph: Callable[[], Tuple[kaldifst.StdVectorFst, List[str]]] = None,
        cache_folder=None,
        acoustic_scales: Sequence[float] = (0.05, 0.1, 0.2, 0.5, 1.0),
        beam: float = 16.0,
        max_active: int = 7000,
        word_insertion_penalties: Sequence[float] = (0.0,),
        grid_extensions: int = 0,
    ):
        self.build_graph, self.cache_folder = graph, cache_folder
        self.word_insertion_penalties = [float(penalty) for penalty in word_insertion_penalties]
        self.word_insertion_penalty = 0.0  # chosen on valid with the acoustic scale
        self.penalised_graphs = {}  # penalty -> the graph with it on every word arc
        self.acoustic_scales = [float(scale) for scale in acoustic_scales]
        self.beam, self.max_active = beam, max_active
        self.grid_extensions = grid_extensions
        self.extensions_made = Counter()  # (grid, edge) -> values added there so far
        self.graph, self.words = None, None
        self.input_labels = None  # graph input label i + 1 -> model label (None: i)
        self.label_log_priors = None  # set from the training alignments (FrameTargets)
        self.acoustic_scale = None  # chosen on valid

    def prepare(self, num_labels: int) -> None:
        """Build the graph (main process, once) and load it; ``ValueError`` naming the graph
        file if its input labels go beyond the model's ``num_labels`` outputs."""
        run_on_main(build_cached_graph, args=[self.build_graph, self.cache_folder])
        self.graph, self.words, stats = read_cached_graph(self.cache_folder)
        largest = stats["largest_input_label"]  # counted once, when the graph was built
        if largest > num_labels:  # input label = model label + 1
            raise ValueError(
                f"{Path(self.cache_folder) / GRAPH_FILE}: the graph's input labels reach model "
                f"label {largest - 1}, but the model has {num_labels} outputs: graph and labels do "
                "not match."
            )

    def widen_grid(
        self, best: Tuple[float, float], error_at: Callable[[Tuple[float, float]], float]
    ) -> bool:
        """If the best ``(acoustic scale, penalty)`` found on valid lies on an edge of a grid of
        several values, with an error (``error_at`` of a decoded setting) lower than at the
        next value inwards (the error still falls towards the edge), and fewer than
        ``grid_extensions`` values were added past that edge, add the next value past it: the
        scale grid's outermost ratio (0.05 below 0.07, 0.1: 0.0357) or the penalty grid's
        outermost difference. Returns whether a grid grew (its new settings are to be decoded)."""
        widened = False
        for axis, (name, geometric) in enumerate(
            (("acoustic_scales", True), ("word_insertion_penalties", False))
        ):
            grid, value = sorted(getattr(self, name)), best[axis]
            if len(grid) < 2 or value not in (grid[0], grid[-1]):
                continue
            edge = "low" if value == grid[0] else "high"
            inner = grid[1] if edge == "low" else grid[-2]
            neighbour = (inner, best[1]) if axis == 0 else (best[0], inner)
            if self.extensions_made[name, edge] >= self.grid_extensions:
                continue
            if not error_at(best) < error_at(neighbour):
                continue  # flat towards the edge: nothing better lies past it
            beyond = value * (value / inner) if geometric else value + (value - inner)
            setattr(self, name, sorted([*grid, float(f"{beyond:.3g}")]))
            self.extensions_made[name, edge] += 1
            widened = True
        return widened

    def best_path(
        self, scores: np.ndarray, acoustic_scale: float = None, word_insertion_penalty: float = None
    ) -> Dict:
        """:func:`decode` of one utterance's ``[frames × labels]`` scores at ``acoustic_scale``
        and ``word_insertion_penalty`` (default: the chosen ones), with its ``words``. The
        scores are log-posteriors, or, for a decoder without label priors
        (:meth:`from_kaldi`), pseudo-log-likelihoods."""
        scale = self.acoustic_scale if acoustic_scale is None else acoustic_scale
        penalty = self.word_insertion_penalty
        if word_insertion_penalty is not None:
            penalty = word_insertion_penalty
        if self.label_log_priors is None:
            loglikes = scale * np.asarray(scores, dtype=np.float32)
        else:
            loglikes = pseudo_log_likelihoods(scores, self.label_log_priors, scale)
        graph = self.graph
        if penalty:
            if penalty not in self.penalised_graphs:
                self.penalised_graphs[penalty] = with_word_penalty(
                    self.graph, penalty, len(self.words)
                )
            graph = self.penalised_graphs[penalty]
        best = decode(graph, loglikes, self.beam, self.max_active, self.input_labels)
        best["words"] = [self.words[word_id - 1] for word_id in best["word_ids"]]
        return best

    def transcribe(self, scores: np.ndarray, acoustic_scale: float = None) -> List[str]:
        """The words of one utterance (see :meth:`best_path`)."""
        return self.best_path(scores, acoustic_scale)["words"]

    @classmethod
    def from_kaldi(
        cls,
        graph_folder,
        model,
        acoustic_scales: Sequence[float] = (0.05, 0.08, 0.1, 0.12, 0.15),
        beam: float = 13.0,
        max_active: int = 7000,
        num_pdfs: int = None,
    ) -> "WordDecoder":
        """A decoder of a Kaldi system's graph: ``graph_folder`` holds ``HCLG.fst`` (const or
        vector) and ``words.txt``; its input labels are transition-ids of ``model``'s
        (``final.mdl``) transition model, whose table gives each its pdf. It decodes
        pseudo-log-likelihoods (e.g. from ``export_loglikes.py``) over those pdfs; with
        ``num_pdfs`` (the acoustic model's labels), a transition model with another number of
        pdfs is refused."""
        decoder = cls(acoustic_scales=acoustic_scales, beam=beam, max_active=max_active)
        decoder.graph = read_graph(Path(graph_folder) / "HCLG.fst")
        decoder.words = read_word_symbols(Path(graph_folder) / "words.txt")
        decoder.input_labels = read_transition_pdfs(model)[1:]  # transition-id 1, 2, ...
        model_pdfs = int(decoder.input_labels.max()) + 1
        if num_pdfs is not None and model_pdfs != num_pdfs:
            raise ValueError(
                f"{model}: its transition model has {model_pdfs} pdfs, the model was trained on "
                f"{num_pdfs} labels: not the same pdf ids."
            )
        return decoder

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
            "word_insertion_penalty": self.word_insertion_penalty,
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
        self.word_insertion_penalty = state.get("word_insertion_penalty", 0.0)
        self.max_active = state["max_active"]

"""Decoding graphs over a frame-target model's labels, built with kaldifst.

A graph's input labels are the model's label ids + 1 (0 is epsilon), its output labels word
ids (1-based into a word list). Each HMM state of a word is a graph state with a self-loop,
entered by any of the model labels it may emit (one, or several where the label depends on a
context the graph does not track, e.g. the phones across a word boundary). Two shapes:

- :func:`word_loop_graph`: any sequence of a few words (connected digits), uniform unigram;
- :func:`lexicon_graph`: a lexicon composed with an n-gram grammar from an ARPA file
  (``kaldilm``), determinized and minimized as Kaldi's ``mkgraph.sh`` makes LG (no weight
  pushing), then each state symbol expanded into its HMM state (the H of HCLG; within-word
  context is in the pronunciations, see :mod:`blend_modules.hybrid.senone_graph`).
"""

from typing import Mapping, NamedTuple, Sequence, Tuple

import kaldifst
import numpy as np

from blend_modules.hybrid.language_model import arpa_to_fst


class Pronunciation(NamedTuple):
    """A word's HMM: one entry per state, each the model labels the state may emit (usually one;
    several where the state's label depends on a context the graph does not track)."""

    word: str
    states: Sequence[Sequence[int]]


def self_loop_probabilities(alignments: Mapping[str, np.ndarray], num_labels: int) -> np.ndarray:
    """Each label's probability of staying for another frame, estimated from training
    alignments as Kaldi estimates HMM transitions: 1 − runs / frames (a label of mean duration
    d frames stays with probability 1 − 1/d); 0.5 for a label never seen."""
    frames, runs = np.zeros(num_labels), np.zeros(num_labels)
    for labels in alignments.values():
        starts = np.flatnonzero(np.diff(labels, prepend=-1))  # first frame of each run
        np.add.at(runs, labels[starts], 1)
        np.add.at(frames, labels, 1)
    seen = frames > 0
    stay = np.full(num_labels, 0.5)
    stay[seen] = 1.0 - runs[seen] / frames[seen]
    return np.clip(stay, 1e-3, 1.0 - 1e-3)  # a state always may stay and may leave


def transition_costs(
    labels: Sequence[int], self_loop_probs: np.ndarray = None, self_loop_scale: float = 1.0
) -> Tuple[float, float]:
    """(stay, leave) costs of an HMM state emitting ``labels``: −log p and −log(1 − p), p its
    labels' mean self-loop probability, both times ``self_loop_scale`` (Kaldi's ``mkgraph.sh``
    uses 0.1, so that durations weigh as much as acoustics scaled by about 0.1); free
    transitions without ``self_loop_probs``."""
    if self_loop_probs is None:
        return 0.0, 0.0
    stay = float(np.mean(self_loop_probs[list(labels)]))
    return float(-np.log(stay) * self_loop_scale), float(-np.log(1.0 - stay) * self_loop_scale)


def add_hmm_state(
    graph: kaldifst.StdVectorFst,
    source: int,
    labels: Sequence[int],
    word_id: int,
    cost: float,
    stay_cost: float,
) -> int:
    """A new state entered from ``source`` by each of ``labels`` (output ``word_id``, ``cost``)
    and looping on them at ``stay_cost``; returns it."""
    state = graph.add_state()
    for label in labels:
        graph.add_arc(source, kaldifst.StdArc(label + 1, word_id, cost, state))
        graph.add_arc(state, kaldifst.StdArc(label + 1, 0, stay_cost, state))
    return state


def word_loop_graph(
    pronunciations: Sequence[Pronunciation],
    silence: Sequence[Sequence[int]],
    words: Sequence[str],
    self_loop_probs: np.ndarray = None,
    self_loop_scale: float = 1.0,
) -> kaldifst.StdVectorFst:
    """A graph for any sequence of the ``pronunciations``' words, with optional silence before,
    between and after them (a free word loop, e.g. connected digits), under a uniform unigram
    language model (each word costs log of the number of words; silence is free).

    With ``self_loop_probs`` (per label, see :func:`self_loop_probabilities`) staying in a state
    costs −log p and leaving −log(1 − p), both times ``self_loop_scale``
    (:func:`transition_costs`); without, transitions are free (durations left to the
    acoustics). The word id (index in ``words`` + 1) is output on the word's first arc.
    """
    word_ids = {word: index + 1 for index, word in enumerate(words)}
    graph = kaldifst.StdVectorFst()
    loop = graph.add_state()
    graph.start = loop
    graph.set_final(loop, 0.0)
    word_cost = float(np.log(len({p.word for p in pronunciations})))
    for pronunciation in [Pronunciation(None, silence), *pronunciations]:
        if pronunciation.word is not None and pronunciation.word not in word_ids:
            raise ValueError(f"Word '{pronunciation.word}' is not in the word list.")
        word_id, cost = (
            (word_ids[pronunciation.word], word_cost) if pronunciation.word else (0, 0.0)
        )
        previous = loop
        for labels in pronunciation.states:
            stay_cost, leave_cost = transition_costs(labels, self_loop_probs, self_loop_scale)
            previous = add_hmm_state(graph, previous, labels, word_id, cost, stay_cost)
            word_id, cost = 0, leave_cost
        graph.add_arc(previous, kaldifst.StdArc(0, 0, cost, loop))
    kaldifst.arcsort(graph, sort_type="ilabel")
    return graph


def lexicon_graph(
    pronunciations: Sequence[Pronunciation],
    silence: Sequence[Sequence[int]],
    words: Sequence[str],
    arpa,
    self_loop_probs: np.ndarray = None,
    self_loop_scale: float = 1.0,
    log_semiring: bool = True,
) -> kaldifst.StdVectorFst:
    """The decoding graph of an n-gram language model (``arpa``, over ``words``) and a lexicon
    of HMM ``pronunciations`` (several per word allowed), with optional ``silence`` (free)
    before, between and after words.

    As Kaldi's ``mkgraph.sh`` builds LG: L (state symbols -> words, one disambiguation symbol
    ending each pronunciation so that L∘G determinizes; ``#0`` passes G's back-off arcs)
    composed with G, determinized (in the log semiring, ``fstdeterminizestar --use-log=true``,
    unless ``log_semiring`` is False: tropical) and minimized (``fstminimizeencoded``); then the
    disambiguation symbols become epsilons and each state symbol its HMM state (self-loop costs
    as in :func:`word_loop_graph`). Unlike ``mkgraph.sh`` the weights are not pushed
    (``fstpushspecial``: no pip package offers it), and there is no context FST C: the
    triphone contexts are already in the pronunciations' states.
    """
    word_ids = {word: index + 1 for index, word in enumerate(words)}
    backoff_word_id = len(words) + 1
    grammar = arpa_to_fst(arpa, words)
    symbols = {}  # an HMM state's labels -> its symbol in L (1-based)
    for pronunciation in [*pronunciations, Pronunciation(None, silence)]:
        for labels in pronunciation.states:
            symbols.setdefault(tuple(sorted(labels)), len(symbols) + 1)
    first_disambiguation = len(symbols) + 1  # one per pronunciation, then #0
    backoff_symbol = first_disambiguation + len(pronunciations)

    lexicon = kaldifst.StdVectorFst()
    loop = lexicon.add_state()
    lexicon.start = loop
    lexicon.set_final(loop, 0.0)
    lexicon.add_arc(loop, kaldifst.StdArc(backoff_symbol, backoff_word_id, 0.0, loop))
    for index, pronunciation in enumerate([*pronunciations, Pronunciation(None, silence)]):
        if pronunciation.word is not None and pronunciation.word not in word_ids:
            raise ValueError(f"Word '{pronunciation.word}' is not in the word list.")
        word_id = word_ids.get(pronunciation.word, 0)
        previous = loop
        for labels in pronunciation.states:
            state = lexicon.add_state()
            lexicon.add_arc(
                previous, kaldifst.StdArc(symbols[tuple(sorted(labels))], word_id, 0.0, state)
            )
            previous, word_id = state, 0
        end_symbol = first_disambiguation + index if pronunciation.word is not None else 0
        lexicon.add_arc(previous, kaldifst.StdArc(end_symbol, 0, 0.0, loop))
    kaldifst.arcsort(lexicon, sort_type="olabel")
    composed = kaldifst.compose(lexicon, grammar)
    determinized = kaldifst.StdVectorFst(composed)
    kaldifst.determinize_star(determinized, use_log=log_semiring)
    kaldifst.minimize_encoded(determinized)
    return expand_hmm_states(determinized, symbols, self_loop_probs, self_loop_scale)


def expand_hmm_states(
    graph: kaldifst.StdVectorFst,
    symbols: Mapping[Tuple[int, ...], int],
    self_loop_probs: np.ndarray = None,
    self_loop_scale: float = 1.0,
) -> kaldifst.StdVectorFst:
    """Each arc of a state symbol becomes that HMM state (entered by any of its labels, with its
    self-loop, left by an epsilon arc); every other input symbol (disambiguation) an epsilon."""
    labels_of = {symbol: labels for labels, symbol in symbols.items()}
    expanded = kaldifst.StdVectorFst()
    for _ in range(graph.num_states):
        expanded.add_state()
    expanded.start = graph.start
    for state in kaldifst.StateIterator(graph):
        final = graph.final(state)
        if final != kaldifst.TropicalWeight.zero:
            expanded.set_final(state, final)
        for arc in kaldifst.ArcIterator(graph, state):
            labels = labels_of.get(arc.ilabel)
            if labels is None:
                expanded.add_arc(state, kaldifst.StdArc(0, arc.olabel, arc.weight, arc.nextstate))
                continue
            stay_cost, leave_cost = transition_costs(labels, self_loop_probs, self_loop_scale)
            hmm_state = add_hmm_state(
                expanded, state, labels, arc.olabel, arc.weight.value, stay_cost
            )
            expanded.add_arc(hmm_state, kaldifst.StdArc(0, 0, leave_cost, arc.nextstate))
    kaldifst.arcsort(expanded, sort_type="ilabel")
    return expanded

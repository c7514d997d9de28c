"""A synthetic Kaldi system written as Kaldi writes it, for tests: a binary ``final.mdl`` whose
transition model has 3-state left-to-right HMMs, an ``HCLG.fst`` over its transition-ids (a
free loop of words, each a sequence of phones) and ``words.txt``."""

import struct
from pathlib import Path
from typing import Dict, List, Sequence

import kaldifst
import numpy as np

STATES = 3  # emitting states per phone; state 3 is the final, non-emitting one


def _token(text: str) -> bytes:
    return text.encode() + b" "


def _int32(value: int) -> bytes:
    return b"\4" + struct.pack("<i", value)


def _float32(value: float) -> bytes:
    return b"\4" + struct.pack("<f", value)


def _int_vector(values: Sequence[int]) -> bytes:
    return b"\4" + struct.pack("<i", len(values)) + struct.pack(f"<{len(values)}i", *values)


def pdf_of(phone: int, state: int, num_pdfs: int) -> int:
    """The (forward) pdf of a phone's HMM state: phones 1.. tile the pdfs in order."""
    return (STATES * (phone - 1) + state) % num_pdfs


def self_loop_tid(phone: int, state: int) -> int:
    """Tuples are written phone by phone, state by state, and each state's self-loop is listed
    before its forward transition: transition-ids 2k + 1 and 2k + 2 of tuple k."""
    return 2 * (STATES * (phone - 1) + state) + 1


def write_final_mdl(
    path, num_phones: int, num_pdfs: int, self_loop_pdfs: Dict[tuple, int] = None
) -> None:
    """A binary ``final.mdl`` (transition model, then stand-in bytes for the acoustic model).
    With ``self_loop_pdfs`` ((phone, state) -> pdf) the extended topology and ``<Tuples>`` with
    separate self-loop pdfs are written, else ``<Triples>``."""
    extended = self_loop_pdfs is not None
    data = b"\0B" + _token("<TransitionModel>") + _token("<Topology>")
    data += _int_vector(list(range(1, num_phones + 1))) + _int_vector([-1] + [0] * num_phones)
    if extended:
        data += _int32(-1)
    data += _int32(1)  # one topology entry, shared by every phone
    data += _int32(STATES + 1)
    for state in range(STATES + 1):
        data += _int32(state if state < STATES else -1)  # forward pdf class
        if extended:
            data += _int32(state if state < STATES else -1)  # self-loop pdf class
        transitions = [(state, 0.5), (state + 1, 0.5)] if state < STATES else []
        data += _int32(len(transitions))
        for destination, probability in transitions:
            data += _int32(destination) + _float32(probability)
    data += _token("</Topology>")
    data += _token("<Tuples>" if extended else "<Triples>") + _int32(num_phones * STATES)
    for phone in range(1, num_phones + 1):
        for state in range(STATES):
            data += _int32(phone) + _int32(state) + _int32(pdf_of(phone, state, num_pdfs))
            if extended:
                data += _int32(self_loop_pdfs.get((phone, state), pdf_of(phone, state, num_pdfs)))
    data += _token("</Tuples>" if extended else "</Triples>")
    num_tids = 2 * num_phones * STATES
    data += _token("<LogProbs>") + _token("FV") + _int32(num_tids)
    data += struct.pack(f"<{num_tids}f", *([np.log(0.5)] * num_tids)) + _token("</LogProbs>")
    data += _token("</TransitionModel>") + _token("<DIMENSION>") + _int32(13)  # the AM: unread
    Path(path).write_bytes(data)


def write_graph(folder, lexicon: Dict[str, List[int]], const: bool = True) -> List[str]:
    """``HCLG.fst`` (a const FST, as ``mkgraph.sh`` writes) and ``words.txt`` of a free word
    loop over ``lexicon`` (word -> phones): each HMM state stays on its self-loop
    transition-id and leaves on its forward one; returns the words (ids 1..)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    words = sorted(lexicon)
    graph = kaldifst.StdVectorFst()
    loop = graph.add_state()
    graph.start = loop
    graph.set_final(loop, 0.0)
    for word_id, word in enumerate(words, start=1):
        state = graph.add_state()
        graph.add_arc(loop, kaldifst.StdArc(0, word_id, 1.0, state))
        for phone in lexicon[word]:
            for hmm_state in range(STATES):
                following = graph.add_state()
                tid = self_loop_tid(phone, hmm_state)
                graph.add_arc(state, kaldifst.StdArc(tid, 0, 0.0, state))
                graph.add_arc(state, kaldifst.StdArc(tid + 1, 0, 0.0, following))
                state = following
        graph.add_arc(state, kaldifst.StdArc(0, 0, 0.0, loop))
    kaldifst.arcsort(graph, sort_type="ilabel")
    (kaldifst.StdConstFst(graph) if const else graph).write(str(folder / "HCLG.fst"))
    symbols = ["<eps>", *words, "#0"]
    (folder / "words.txt").write_text("".join(f"{w} {i}\n" for i, w in enumerate(symbols)))
    return words


def pdf_frames(phones: Sequence[int], num_pdfs: int, rng, self_loop_pdfs=None) -> List[int]:
    """Per-frame pdfs of a phone sequence: each HMM state 1-5 frames, its last frame on the
    forward transition, the others on the self-loop."""
    frames = []
    for phone in phones:
        for state in range(STATES):
            stay = int(rng.integers(0, 5))
            self_pdf = (self_loop_pdfs or {}).get((phone, state), pdf_of(phone, state, num_pdfs))
            frames += [self_pdf] * stay + [pdf_of(phone, state, num_pdfs)]
    return frames

"""Kaldi systems from Python: the transition-id -> pdf table of a binary final.mdl, a const
HCLG.fst over transition-ids decoding pdf pseudo-log-likelihoods to words, Kaldi text and CTM
output, and unreadable files refused naming them."""

import numpy as np
import pytest
from kaldi_system import pdf_frames, self_loop_tid, write_final_mdl, write_graph

from blend_modules.hybrid.decoder import WordDecoder
from blend_modules.hybrid.kaldi_model import read_graph, read_transition_pdfs, read_word_symbols
from blend_modules.hybrid.kaldi_output import write_ctm, write_text

NUM_PHONES, NUM_PDFS = 4, 12
LEXICON = {"yes": [1, 2], "no": [3], "maybe": [4, 1, 3]}


def test_transition_pdfs_of_triples(tmp_path):
    write_final_mdl(tmp_path / "final.mdl", NUM_PHONES, NUM_PDFS)
    pdfs = read_transition_pdfs(tmp_path / "final.mdl")
    assert len(pdfs) == 1 + 2 * 3 * NUM_PHONES and pdfs[0] == -1
    # transition-ids 1, 2: phone 1 state 0 (self-loop, forward) -> its pdf 0; and so on
    assert pdfs[1:].tolist() == [pdf for pdf in range(NUM_PDFS) for _ in (0, 1)]


def test_self_loops_take_their_own_pdf_in_tuples(tmp_path):
    """Kaldi's <Tuples> (e.g. chain models): a transition back to the same state has the
    self-loop pdf, the others the forward pdf."""
    write_final_mdl(tmp_path / "final.mdl", NUM_PHONES, NUM_PDFS, self_loop_pdfs={(2, 1): 11})
    pdfs = read_transition_pdfs(tmp_path / "final.mdl")
    tid = self_loop_tid(2, 1)
    assert (pdfs[tid], pdfs[tid + 1]) == (11, 4)
    assert pdfs[self_loop_tid(2, 0)] == 3


@pytest.mark.parametrize("const", [True, False])
def test_kaldi_graph_decodes_pdf_loglikes_to_words(tmp_path, const):
    """Near-certain pdf scores of a known word sequence decode to it through a const (as
    mkgraph.sh writes) or vector HCLG; Kaldi text and a CTM of it are written."""
    write_final_mdl(tmp_path / "final.mdl", NUM_PHONES, NUM_PDFS, self_loop_pdfs={(1, 2): 11})
    write_graph(tmp_path / "graph", LEXICON, const=const)
    rng = np.random.default_rng(0)
    spoken = ["maybe", "no", "yes", "yes"]
    frames, starts = [], []
    for word in spoken:
        starts.append(len(frames))
        frames += pdf_frames(LEXICON[word], NUM_PDFS, rng, self_loop_pdfs={(1, 2): 11})
    loglikes = np.full((len(frames), NUM_PDFS), -10.0, dtype=np.float32)
    loglikes[np.arange(len(frames)), frames] = 0.0

    decoder = WordDecoder.from_kaldi(tmp_path / "graph", tmp_path / "final.mdl", [1.0])
    best = decoder.best_path(loglikes, 1.0)
    assert best["words"] == spoken and best["reached_final"]
    assert len(best["labels"]) == len(frames)
    # this graph outputs a word as it enters it; Kaldi's best path merges that epsilon arc
    # into a neighbour, so the label sits on the word's first frame or the one before
    assert [start - frame for frame, start in zip(best["word_frames"], starts)] in (
        [0, 1, 1, 1],
        [0, 0, 0, 0],
    )

    hypotheses = {"sw_4390-A_000030-000180": best}
    write_text(tmp_path / "text", hypotheses)
    assert (tmp_path / "text").read_text() == "sw_4390-A_000030-000180 maybe no yes yes\n"
    write_ctm(
        tmp_path / "ctm", hypotheses, {"sw_4390-A_000030-000180": ("sw_4390", "A", 0.2)}, 0.01
    )
    lines = [line.split() for line in (tmp_path / "ctm").read_text().splitlines()]
    assert [line[4] for line in lines] == spoken
    assert all(line[:2] == ["sw_4390", "A"] for line in lines)
    begins = [float(line[2]) for line in lines]
    assert begins == pytest.approx([0.2 + 0.01 * f for f in best["word_frames"]])
    assert float(lines[-1][2]) + float(lines[-1][3]) == pytest.approx(0.2 + len(frames) * 0.01)


def test_unreadable_kaldi_files_are_refused(tmp_path):
    text_model = tmp_path / "text.mdl"
    text_model.write_text("<TransitionModel>\n<Topology>\n")
    with pytest.raises(ValueError, match=f"{text_model}: not a binary Kaldi file"):
        read_transition_pdfs(text_model)
    write_final_mdl(tmp_path / "final.mdl", NUM_PHONES, NUM_PDFS)
    truncated = tmp_path / "truncated.mdl"
    truncated.write_bytes((tmp_path / "final.mdl").read_bytes()[:120])
    with pytest.raises(ValueError, match=f"{truncated}: "):
        read_transition_pdfs(truncated)
    not_a_model = tmp_path / "gmm.mdl"
    not_a_model.write_bytes(b"\0B<DiagGmm> ")
    with pytest.raises(ValueError, match=f"{not_a_model}: expected <TransitionModel>"):
        read_transition_pdfs(not_a_model)
    garbage = tmp_path / "HCLG.fst"
    garbage.write_bytes(b"not an fst at all")
    with pytest.raises(ValueError, match=f"{garbage}: not an OpenFst graph"):
        read_graph(garbage)
    with pytest.raises(FileNotFoundError, match="no such decoding graph"):
        read_graph(tmp_path / "missing" / "HCLG.fst")
    words = tmp_path / "words.txt"
    words.write_text("<eps> 0\nyes 1\nno 3\n")
    with pytest.raises(ValueError, match=f"{words}:3: expected 'word 2'"):
        read_word_symbols(words)

"""Senone frame targets realigned by a trained model, as Kaldi's ``steps/nnet/align.sh``
realigns a training set with a neural network.

Each training utterance's transcript becomes a graph over the model's labels
(:func:`transcript_graph`): its words in order, every pronunciation of each, optional silence
before, between and after them, each phone's states labelled as in the decoding graph
(:mod:`blend_modules.hybrid.senone_graph`: the triphone's senones within a word, any context
across a word boundary). The Viterbi path of the model's pseudo-log-likelihoods through it
(kaldi-decoder's ``FasterDecoder``; retried at a wider beam, as ``align.sh``'s ``retry_beam``)
gives each frame its label. The forced aligner's alignments chose the labels' inventory and the
priors; the realigned ones then train a model of the same labels.
"""

import logging
import time
from pathlib import Path
from typing import Dict, Optional, Sequence

import kaldifst
import numpy as np
import torch
from speechbrain.dataio.batch import PaddedBatch

from blend_modules.alignment.labels import SenoneLabels, read_labels
from blend_modules.alignment.lexicon import SILENCE_PHONE, normalize_words
from blend_modules.alignment.mdef import Triphones
from blend_modules.data.alignments import read_alignments, write_alignments
from blend_modules.data.frames import frame_counts
from blend_modules.hybrid.decoder import decode
from blend_modules.hybrid.hmm_graphs import (
    add_hmm_state,
    self_loop_probabilities,
    transition_costs,
)
from blend_modules.hybrid.priors import label_counts, log_priors, pseudo_log_likelihoods
from blend_modules.hybrid.senone_graph import Pronunciations, phone_states
from blend_modules.training.teacher import Teacher

logger = logging.getLogger(__name__)

HMMStates = Sequence[Sequence[int]]  # per HMM state, the labels it may emit


def transcript_graph(
    words: Sequence[Sequence[HMMStates]],
    silence: HMMStates,
    self_loop_probs: np.ndarray = None,
    self_loop_scale: float = 1.0,
) -> kaldifst.StdVectorFst:
    """The graph of one transcript: ``words[i]`` the alternatives (pronunciations) of its i-th
    word, each a sequence of HMM states; optional ``silence`` (free, repeatable) before,
    between and after the words. Input labels are model labels + 1, no output labels; HMM
    costs as :func:`blend_modules.hybrid.hmm_graphs.transition_costs`."""
    graph = kaldifst.StdVectorFst()
    node = graph.add_state()
    graph.start = node

    def add_chain(source: int, states: HMMStates, target: int) -> None:
        previous, cost = source, 0.0
        for labels in states:
            stay_cost, leave_cost = transition_costs(labels, self_loop_probs, self_loop_scale)
            previous = add_hmm_state(graph, previous, labels, 0, cost, stay_cost)
            cost = leave_cost
        graph.add_arc(previous, kaldifst.StdArc(0, 0, cost, target))

    for alternatives in words:
        add_chain(node, silence, node)
        following = graph.add_state()
        for states in alternatives:
            add_chain(node, states, following)
        node = following
    add_chain(node, silence, node)
    graph.set_final(node, 0.0)
    kaldifst.arcsort(graph, sort_type="ilabel")
    return graph


class TranscriptGraphs:
    """Transcript graphs of a senone-target corpus: its ``labels.txt``, the aligner's triphone
    tying, and each word's pronunciations (:class:`Pronunciations`: the aligner's dictionary,
    then the corpus ``lexicon``); HMM costs from the training alignments' self-loops."""

    def __init__(self, labels, lexicon, self_loop_probs: np.ndarray, self_loop_scale: float):
        self.labels, self.triphones = SenoneLabels(read_labels(labels)), Triphones()
        self.pronunciations = Pronunciations(lexicon)
        self.silence = phone_states([SILENCE_PHONE], self.triphones, self.labels)
        self.self_loop_probs, self.self_loop_scale = self_loop_probs, self_loop_scale
        self.word_states = {}

    def __call__(self, words: Sequence[str]) -> Optional[kaldifst.StdVectorFst]:
        """The graph of ``words`` (under the transcript rule); None if a word has no
        pronunciation."""
        alternatives = []
        for word in words:
            if word not in self.word_states:
                self.word_states[word] = [
                    phone_states(phones.split(), self.triphones, self.labels)
                    for phones in self.pronunciations(word)
                ]
            if not self.word_states[word]:
                return None
            alternatives.append(self.word_states[word])
        return transcript_graph(
            alternatives, self.silence, self.self_loop_probs, self.self_loop_scale
        )


@torch.no_grad()
def realign(
    teacher: Teacher,
    dataset,
    features: Dict,
    graphs: TranscriptGraphs,
    label_log_priors: np.ndarray,
    acoustic_scale: float = 0.1,
    beam: float = 10.0,
    retry_beam: float = 40.0,
    batch_size: int = 8,
) -> Dict[str, np.ndarray]:
    """Each utterance of ``dataset`` (items ``id``, ``sig``, ``words``) aligned by
    ``teacher`` through its transcript graph: utterance ID -> one label per feature frame.
    Utterances whose graph cannot be built or whose best path does not reach the end even at
    ``retry_beam`` are left out (and logged), as ``align.sh`` leaves them out."""
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, collate_fn=PaddedBatch)
    alignments, failed = {}, {}
    for batch in loader:
        wavs, wav_lens = batch.sig
        lengths = frame_counts(wav_lens, wavs.shape[1], features)
        log_posteriors = torch.log_softmax(teacher(features["compute_features"](wavs), lengths), -1)
        for utt_id, words, scores, length in zip(
            batch.id, batch.words, log_posteriors.numpy(), lengths.tolist()
        ):
            graph = graphs(normalize_words(words.split()))
            if graph is None:
                failed[utt_id] = "a word without pronunciation"
                continue
            loglikes = pseudo_log_likelihoods(scores[:length], label_log_priors, acoustic_scale)
            for attempt_beam in (beam, retry_beam):
                best = decode(graph, loglikes, beam=attempt_beam, max_active=100_000)
                if best["reached_final"] and best["num_frames"] == length:
                    alignments[utt_id] = np.asarray(best["labels"], dtype=np.int64)
                    break
            else:
                failed[utt_id] = f"no path to the transcript's end at beam {retry_beam}"
    for utt_id, reason in failed.items():
        logger.warning("Utterance '%s' not realigned: %s", utt_id, reason)
    return alignments


def realign_training_set(
    teacher: Teacher,
    dataset,
    features: Dict,
    prepared_folder,
    lexicon,
    output,
    self_loop_scale: float = 0.1,
    **realign_options,
) -> Dict:
    """Realign the training ``dataset`` of a senone-target corpus prepared in
    ``prepared_folder`` (``labels.txt``, ``train.ali``) with ``teacher``; write the Kaldi text
    alignments to ``output`` and return statistics: utterances realigned and left out, the
    share of frames whose label changed, the seconds it took."""
    prepared_folder, start = Path(prepared_folder), time.perf_counter()
    labels = read_labels(prepared_folder / "labels.txt")
    original = read_alignments(prepared_folder / "train.ali", len(labels))
    graphs = TranscriptGraphs(
        prepared_folder / "labels.txt",
        lexicon,
        self_loop_probabilities(original, len(labels)),
        self_loop_scale,
    )
    priors = log_priors(label_counts(original, len(labels)))
    alignments = realign(teacher, dataset, features, graphs, priors, **realign_options)
    write_alignments(output, alignments)
    changed = frames = 0
    for utt_id, labels_now in alignments.items():
        before = original.get(utt_id)
        if before is not None:  # the aligner's labels 1-2 frames fewer, at the end
            common = min(len(before), len(labels_now) - 1)
            changed += int((before[:common] != labels_now[1 : common + 1]).sum())
            frames += common
    return {
        "utterances": len(dataset),
        "realigned": len(alignments),
        "left_out": len(dataset) - len(alignments),
        "frames_changed": round(changed / max(frames, 1), 4),
        "seconds": round(time.perf_counter() - start, 1),
    }

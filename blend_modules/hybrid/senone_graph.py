"""The decoding graph of a model trained on senone frame targets
(:mod:`blend_modules.alignment.senone_targets`): a CMU-phone lexicon, the forced aligner's triphone
-> senone tying (:mod:`blend_modules.alignment.mdef`) mapped onto the model's labels
(``labels.txt``), and a bigram language model estimated on the training transcripts only
(:mod:`blend_modules.hybrid.language_model`).

Each phone of a pronunciation is its 3 HMM states; within a word a phone's neighbours are known,
so its states carry the labels of exactly that triphone. Across a word boundary the graph does
not track the neighbouring word (no C transducer), so the first and last phone of a word may
emit the labels of that triphone in any left / right context (the union, over the CMU phones and
silence). With the recipes' label inventories (a few hundred senones of their own, the others
backed off to their context-independent state) these unions are small.

Usable from any recipe's YAML as the ``graph`` of
:class:`blend_modules.hybrid.decoder.WordDecoder`::

    graph: !name:blend_modules.hybrid.senone_graph.senone_graph
        labels: !ref <prepared_folder>/labels.txt
        lexicon: !ref <data_folder>/resource/lexicon.txt
        train_csv: !ref <train_csv>
        train_alignments: !ref <train_alignments>
"""

import csv
import json
import logging
import tempfile
from pathlib import Path
from typing import Dict, List, Sequence, Set, Tuple

import kaldifst

from blend_modules.alignment.labels import SenoneLabels, read_labels
from blend_modules.alignment.lexicon import (
    CMU_PHONES,
    SILENCE_PHONE,
    manifest_spellings,
    normalize_words,
    read_lexicon,
)
from blend_modules.alignment.mdef import Triphones
from blend_modules.data.alignments import read_alignments
from blend_modules.hybrid.hmm_graphs import Pronunciation, lexicon_graph, self_loop_probabilities
from blend_modules.hybrid.language_model import build_language_model

logger = logging.getLogger(__name__)

CONTEXTS = [SILENCE_PHONE, *CMU_PHONES]  # what may precede or follow a word


VOCABULARIES = ("lexicon", "train")


def phone_states(
    phones: Sequence[str], triphones: Triphones, labels: SenoneLabels
) -> List[Set[int]]:
    """The HMM states of a pronunciation (3 per phone), each the set of model labels it may
    emit: its triphone's senones within the word, any context across the word boundary."""
    states = []
    for index, phone in enumerate(phones):
        first, last = index == 0, index == len(phones) - 1
        position = "s" if first and last else "b" if first else "e" if last else "i"
        lefts = CONTEXTS if first else [phones[index - 1]]
        rights = CONTEXTS if last else [phones[index + 1]]
        for state in range(3):
            states.append(
                {
                    labels(triphones.senones(phone, left, right, position)[state], phone, state)
                    for left in lefts
                    for right in rights
                }
            )
    return states


def default_dictionary_path() -> Path:
    """The pronunciation dictionary of pocketsphinx's bundled en-us model (the aligner's)."""
    import pocketsphinx  # imported here: only graph building for these targets needs it

    return Path(pocketsphinx.get_model_path()) / "en-us" / "cmudict-en-us.dict"


class Pronunciations:
    """A word's pronunciations (the word under the transcript rule): the aligner's
    ``dictionary``'s (default pocketsphinx's CMUdict) if it has the word, as the targets were
    aligned with them, else the corpus ``lexicon``'s (a path, or None); empty if neither has
    it. ``corpus_words``: the lexicon's words."""

    def __init__(self, lexicon=None, dictionary=None):
        self.corpus_lexicon = read_lexicon(lexicon) if lexicon is not None else {}
        self.dictionary = read_lexicon(dictionary or default_dictionary_path(), normalize=False)
        self.corpus_words = list(self.corpus_lexicon)

    def __call__(self, word: str) -> List[str]:
        return self.dictionary.get(word) or self.corpus_lexicon.get(word, [])


def read_transcripts(manifest, words_column: str = "words") -> Dict[str, List[str]]:
    """Each utterance's words, as the manifest spells them (ID -> words)."""
    with open(manifest, newline="") as csv_file:
        return {row["ID"]: (row[words_column] or "").split() for row in csv.DictReader(csv_file)}


def senone_graph(
    labels,
    lexicon,
    train_csv,
    train_alignments=None,
    vocabulary: str = "lexicon",
    discount: float = 0.75,
    dictionary=None,
    mdef=None,
    self_loop_scale: float = 1.0,
    language_model: str = "train",
    valid_csv=None,
    generic_lm=None,
    log_semiring: bool = True,
) -> Tuple[kaldifst.StdVectorFst, List[str], Dict[str, str]]:
    """The decoding graph and its word list for a senone-target model.

    Arguments
    ---------
    labels : path
        The model's ``labels.txt`` (label id, name, aligner senones).
    lexicon : path
        The corpus's CMU-phone lexicon (``WORD PH1 PH2 ...``). A word's pronunciations are
        those of the aligner's ``dictionary`` if it has the word (the targets were aligned with
        them), else the lexicon's. None: the aligner's dictionary alone.
    train_csv : path
        The training manifest: its ``words`` estimate the bigram language model (never test
        text). Words follow the transcript rule (:mod:`blend_modules.alignment.lexicon`), as
        in alignment and scoring; an utterance with a word that has no pronunciation is left
        out of the language model's text, as the aligner leaves it out of the targets (named
        in a warning, counted in ``lm.json`` as ``train_utterances_left_out``).
    train_alignments : path
        The training frame alignments, for HMM self-loop probabilities (optional).
    vocabulary : str
        ``lexicon``: the training words and every lexicon word (a closed vocabulary; words
        never seen in training share the language model's back-off mass); ``train``: only the
        training transcripts' words (any other word is an error).
    discount : float
        The language model's absolute discount.
    dictionary : path
        The aligner's pronunciation dictionary (default: pocketsphinx's bundled CMUdict).
    mdef : path
        The aligner's model definition (default: pocketsphinx's bundled en-us model).
    self_loop_scale : float
        Scales the HMM stay and leave costs (``mkgraph.sh``'s ``--self-loop-scale``).
    language_model : str
        ``train``: the training transcripts' bigram; ``generic``: pocketsphinx's generic
        English LM restricted to the vocabulary; ``interpolated``: the two, weighted on the
        perplexity of ``valid_csv``'s transcripts (:mod:`blend_modules.hybrid.language_model`).
    valid_csv : path
        The valid manifest, whose ``words`` choose the interpolation weight (and whose
        perplexity is reported).
    generic_lm : path
        The generic LM (default: pocketsphinx's bundled ``en-us.lm.bin``).
    log_semiring : bool
        Determinize L∘G in the log semiring, as ``mkgraph.sh`` (False: tropical).

    Returns the graph, its words, and the files kept beside it in the graph cache:
    ``lm.arpa`` (the language model) and ``lm.json`` (its statistics).
    """
    if vocabulary not in VOCABULARIES:
        raise ValueError(f"vocabulary must be one of {VOCABULARIES}, got {vocabulary!r}.")
    pronunciations_of = Pronunciations(lexicon, dictionary)
    transcripts, left_out = {}, {}
    for utt_id, spelled in read_transcripts(train_csv).items():
        words = normalize_words(spelled)
        spellings = manifest_spellings(spelled)
        missing = [spellings[word] for word in words if not pronunciations_of(word)]
        if missing:
            left_out[utt_id] = missing
        else:
            transcripts[utt_id] = words
    if left_out:
        where = lexicon if lexicon is not None else "lexicon: null"
        logger.warning(
            "%s: %d utterance(s) left out of the language model's text: words with no "
            "pronunciation in %s nor the aligner's dictionary (the aligner leaves them out of "
            "the targets too): %s",
            train_csv,
            len(left_out),
            where,
            "; ".join(f"'{utt_id}' {words}" for utt_id, words in list(left_out.items())[:10]),
        )
    if not transcripts:
        raise ValueError(f"{train_csv}: no utterance has a pronunciation for all its words.")
    training_words = {word for words in transcripts.values() for word in words}
    lexicon_words = pronunciations_of.corpus_words if vocabulary == "lexicon" else []
    words = sorted(training_words | set(lexicon_words))
    senone_labels, triphones = SenoneLabels(read_labels(labels)), Triphones(mdef)
    pronunciations = [
        Pronunciation(word, phone_states(phones.split(), triphones, senone_labels))
        for word in words
        for phones in pronunciations_of(word)
    ]
    silence = phone_states([SILENCE_PHONE], triphones, senone_labels)
    self_loop_probs = None
    if train_alignments is not None:
        alignments = read_alignments(train_alignments, senone_labels.count)
        self_loop_probs = self_loop_probabilities(alignments, senone_labels.count)
    valid_sentences = None
    if valid_csv is not None:
        valid_sentences = [normalize_words(w) for w in read_transcripts(valid_csv).values()]
    lm, lm_stats = build_language_model(
        language_model,
        list(transcripts.values()),
        words,
        valid_sentences,
        discount,
        generic_lm=generic_lm,
    )
    lm_stats["train_utterances_left_out"] = len(left_out)
    with tempfile.TemporaryDirectory() as folder:
        arpa = Path(folder) / "lm.arpa"
        lm.write_arpa(arpa)
        graph = lexicon_graph(
            pronunciations, silence, words, arpa, self_loop_probs, self_loop_scale, log_semiring
        )
        arpa_text = arpa.read_text(encoding="utf-8")
    logger.info(
        "Senone graph: %d words (%s vocabulary), %d pronunciations, LM %s.",
        len(words),
        vocabulary,
        len(pronunciations),
        lm_stats,
    )
    return graph, words, {"lm.arpa": arpa_text, "lm.json": json.dumps(lm_stats, indent=2)}

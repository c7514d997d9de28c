"""Decoding graphs over senone targets: pocketsphinx's triphone tying read from its binary
mdef, the bigram language model, and the speechocean762 graph decoding the aligner's own label
sequences back to the transcripts; bad inputs refused naming the file."""

import csv
import shutil
from collections import defaultdict

import numpy as np
import pytest
import soundfile as sf
from speechocean_corpus import EMBEDDED, KEPT

from blend_modules.alignment.aligner import SenoneAligner
from blend_modules.alignment.labels import CI_STATES
from blend_modules.alignment.lexicon import read_lexicon
from blend_modules.alignment.mdef import WORD_POSITIONS, Triphones, read_mdef
from blend_modules.data.alignments import read_alignments
from blend_modules.hybrid.decoder import decode
from blend_modules.hybrid.language_model import write_bigram_arpa
from blend_modules.hybrid.senone_graph import default_dictionary_path, senone_graph

LEXICON = EMBEDDED / "resource" / "lexicon.txt"


def word_position(index: int, phones_in_word: int) -> str:
    """pocketsphinx's word position of a word's phone: single, begin, end or internal."""
    if phones_in_word == 1:
        return "s"
    return "b" if index == 0 else "e" if index == phones_in_word - 1 else "i"


def test_mdef_tying_reproduces_the_aligners_senones(speechocean_prepared):
    """Every aligned speech phone's 3 senones are exactly those the mdef gives its triphone:
    context from its neighbours, word position from the aligner's own word segmentation."""
    triphones, aligner = Triphones(), SenoneAligner()
    assert len(triphones.ci_phones) == 42 and triphones.senones("SIL", "", "", "") == (96, 97, 98)
    checked = 0
    with open(speechocean_prepared / "align_train.csv", newline="") as manifest:
        for row in list(csv.DictReader(manifest))[:10]:
            words = row["words"].lower().split()
            if any(aligner.decoders[0].lookup_word(word) is None for word in words):
                continue  # only the aligner's dictionary words: their pronunciations are known
            samples, _ = sf.read(row["wav"], dtype="int16")
            _, attempt = aligner.align(samples, words)
            phones = []  # (phone, word position, senones) through the utterance
            for word in aligner.decoders[attempt - 1].get_alignment():
                in_word = [(phone.name, tuple(int(s.name) for s in phone)) for phone in word]
                for index, (phone, senones) in enumerate(in_word):
                    phones.append((phone, word_position(index, len(in_word)), senones))
            for index, (phone, position, senones) in enumerate(phones):
                if phone != "SIL":  # utterances begin and end in SIL
                    left, right = phones[index - 1][0], phones[index + 1][0]
                    assert triphones.senones(phone, left, right, position) == senones, phone
                    checked += 1
    assert checked > 100


def test_mdef_back_off_follows_pocketsphinx():
    """A triphone missing at its word position backs off to the other positions in
    pocketsphinx's order (internal, begin, end, single: ``bin_mdef_phone_id_nearest``), then to
    the context-independent phone."""
    triphones = Triphones()
    assert WORD_POSITIONS == "ibes"
    contexts = defaultdict(dict)
    for (position, base, left, right), senones in triphones.states.items():
        if position:
            contexts[(base, left, right)][position] = senones
    backed_off = 0
    for (base, left, right), by_position in contexts.items():
        missing = [position for position in WORD_POSITIONS if position not in by_position]
        if missing and len(by_position) >= 2 and len(set(by_position.values())) >= 2:
            first_present = next(p for p in WORD_POSITIONS if p in by_position)
            for position in missing:
                assert triphones.senones(base, left, right, position) == by_position[first_present]
                backed_off += 1
    assert backed_off > 100
    ci = triphones.states[("", "AE", "", "")]
    assert not any((position, "AE", "AA", "AA") in triphones.states for position in "ibes")
    assert triphones.senones("AE", "AA", "AA", "b") == ci


def test_mdef_that_is_not_binary_is_refused(tmp_path):
    path = tmp_path / "mdef"
    path.write_text("0.3\n42 n_base\n")
    with pytest.raises(ValueError, match=f"{path}: not a binary pocketsphinx mdef"):
        read_mdef(path)


def read_arpa(path):
    """{order: {ngram tuple: (log10 p, log10 backoff)}} of an ARPA file."""
    grams, order = defaultdict(dict), None
    for line in path.read_text().splitlines():
        if line.endswith("-grams:"):
            order = int(line[1])
        elif order and line.strip() and not line.startswith("\\"):
            fields = line.split("\t")
            grams[order][tuple(fields[1].split())] = (float(fields[0]), float((fields + ["0"])[2]))
    return grams


def test_bigram_model_is_normalised_and_keeps_unseen_words(tmp_path):
    sentences = [["a", "b"], ["b", "a", "a"], ["a", "c", "b"]]
    counts = write_bigram_arpa(sentences, ["a", "b", "c", "d"], tmp_path / "lm.arpa")
    assert counts["tokens"] == 8 and counts["training_word_types"] == 3
    grams = read_arpa(tmp_path / "lm.arpa")
    unigram = {w[0]: 10**p for w, (p, _) in grams[1].items() if w != ("<s>",)}
    assert sum(unigram.values()) == pytest.approx(1.0)
    assert unigram["d"] > 0  # in the vocabulary, never seen: the back-off mass
    for history in ("<s>", "a", "b", "c"):
        backoff = 10 ** grams[1][(history,)][1]

        def probability(word):
            seen = grams[2].get((history, word))
            return 10 ** seen[0] if seen else backoff * unigram[word]

        assert sum(probability(word) for word in unigram) == pytest.approx(1.0)
    with pytest.raises(ValueError, match=r"missing from the vocabulary: \['c'\]"):
        write_bigram_arpa(sentences, ["a", "b"], tmp_path / "bad.arpa")


def reference_words(manifest):
    with open(manifest, newline="") as csv_file:
        return {row["ID"]: row["words"].split() for row in csv.DictReader(csv_file)}


@pytest.fixture(scope="module")
def graph(speechocean_prepared):
    return senone_graph(
        speechocean_prepared / "labels.txt",
        LEXICON,
        speechocean_prepared / "train.csv",
        speechocean_prepared / "train.ali",
    )


def test_graph_decodes_the_aligned_labels_to_the_transcripts(speechocean_prepared, graph):
    """The test set's own aligned label sequences (as near-certain posteriors) decode to its
    transcripts but for homophones: the graph holds the words as the aligner pronounced them,
    with the labels the targets gave each triphone state. No test text went into it."""
    fst, words = graph
    assert len(words) > 2000  # the corpus lexicon: test words never seen in training included
    num_labels = len(CI_STATES) + KEPT
    references = reference_words(speechocean_prepared / "test.csv")
    dictionary = read_lexicon(default_dictionary_path())
    homophones = 0
    for utt_id, labels in read_alignments(speechocean_prepared / "test.ali", num_labels).items():
        loglikes = np.full((len(labels), num_labels), -10.0, dtype=np.float32)
        loglikes[np.arange(len(labels)), labels] = 0.0
        best = decode(fst, loglikes, beam=10.0, max_active=2000)
        assert best["reached_final"]
        hypothesis = [words[i - 1] for i in best["word_ids"]]
        assert len(hypothesis) == len(references[utt_id]), (hypothesis, references[utt_id])
        for said, heard in zip(references[utt_id], hypothesis):
            if said != heard:  # TWO / TO, FOUR / FOR, SEE / SEA: the same sounds
                assert set(dictionary[said.lower()]) & set(dictionary[heard.lower()])
                homophones += 1
    assert homophones < 0.1 * sum(len(words) for words in references.values())


def test_training_vocabulary_leaves_unseen_words_out(speechocean_prepared):
    _, words = senone_graph(
        speechocean_prepared / "labels.txt",
        LEXICON,
        speechocean_prepared / "train.csv",
        vocabulary="train",
    )
    training = {
        w for ws in reference_words(speechocean_prepared / "train.csv").values() for w in ws
    }
    assert set(words) == training


def test_training_word_without_pronunciation_is_refused(speechocean_prepared, tmp_path):
    manifest = tmp_path / "train.csv"
    text = (speechocean_prepared / "train.csv").read_text().splitlines()
    first = text[1].split(",")
    first[4] = first[4] + " ZORBLAXIAN"
    manifest.write_text("\n".join([text[0], ",".join(first), *text[2:]]) + "\n")
    with pytest.raises(ValueError, match=rf"{LEXICON}: no pronunciation .*\['ZORBLAXIAN'\]"):
        senone_graph(speechocean_prepared / "labels.txt", LEXICON, manifest)


def test_no_lexicon_uses_the_aligners_dictionary(speechocean_prepared, tmp_path):
    """``lexicon: null`` (issue 24: a bare TypeError): the aligner's dictionary alone; a word it
    lacks is refused naming the key."""
    manifest = tmp_path / "train.csv"
    manifest.write_text("ID,duration,wav,words\nu1,1.0,a.wav,HELLO WORLD\nu2,1.0,b.wav,WORLD\n")
    graph, words = senone_graph(speechocean_prepared / "labels.txt", None, manifest)
    assert words == ["HELLO", "WORLD"] and graph.num_states > 0
    manifest.write_text("ID,duration,wav,words\nu1,1.0,a.wav,HELLO ZORBLAXIAN\n")
    with pytest.raises(ValueError, match=r"lexicon: null, and no pronunciation .*'ZORBLAXIAN'"):
        senone_graph(speechocean_prepared / "labels.txt", None, manifest)


def test_lexicon_with_unknown_phones_is_refused(speechocean_prepared, tmp_path):
    lexicon = tmp_path / "lexicon.txt"
    shutil.copy(LEXICON, lexicon)
    with open(lexicon, "a") as out:
        out.write("GNU G N UX\n")
    number = len(lexicon.read_text().splitlines())
    with pytest.raises(ValueError, match=rf"{lexicon}:{number}: phones \['UX'\]"):
        senone_graph(
            speechocean_prepared / "labels.txt", lexicon, speechocean_prepared / "train.csv"
        )

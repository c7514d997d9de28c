"""Decoding graphs over senone targets: pocketsphinx's triphone tying read from its binary
mdef, the bigram language model, and the speechocean762 graph decoding the aligner's own label
sequences back to the transcripts; bad inputs refused naming the file."""

import csv
import functools
import json
import math
import shutil
import tempfile
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from speechocean_corpus import EMBEDDED, KEPT

from blend_modules.alignment.aligner import SenoneAligner
from blend_modules.alignment.labels import CI_STATES
from blend_modules.alignment.lexicon import CMU_PHONES, normalize_words, read_lexicon
from blend_modules.alignment.mdef import WORD_POSITIONS, Triphones, read_mdef
from blend_modules.data.alignments import read_alignments
from blend_modules.hybrid.decoder import WordDecoder, decode
from blend_modules.hybrid.hmm_graphs import self_loop_probabilities
from blend_modules.hybrid.language_model import (
    BackoffBigram,
    arpa_to_fst,
    choose_interpolation_weight,
    default_generic_lm_path,
    estimate_bigram,
    generic_bigram,
    interpolate,
    read_arpa,
)
from blend_modules.hybrid.senone_graph import default_dictionary_path, senone_graph
from blend_modules.targets.teacher_alignment import TranscriptGraphs

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


def test_mdef_back_off_to_silence_context_follows_pocketsphinx():
    """Issue 24: after the other word positions, pocketsphinx retries with silence for a
    filler context and for the context across a word edge, before the CI phone."""
    triphones = Triphones()
    assert triphones.silence == "SIL" and {"+NSN+", "+SPN+"} <= triphones.fillers
    ci = triphones.states[("", "AE", "", "")]
    assert triphones.senones("AE", "AA", "AA", "b") == ci  # no such triphone, even with SIL
    triphones.states[("e", "AE", "SIL", "AA")] = (1, 2, 3)  # a model that has AE after SIL
    assert triphones.senones("AE", "AA", "AA", "b") == (1, 2, 3)  # left across the edge
    assert triphones.senones("AE", "AA", "AA", "i") == ci  # inside a word: no retry
    assert triphones.senones("AE", "+NSN+", "AA", "i") == (1, 2, 3)  # a filler context
    left, right = next(
        (left, right)
        for left in CMU_PHONES
        for right in CMU_PHONES
        if not any((position, "AE", left, right) in triphones.states for position in "ibes")
    )
    triphones.states[("s", "AE", "SIL", "SIL")] = (4, 5, 6)
    assert triphones.senones("AE", left, right, "s") == (4, 5, 6)  # both edges


def test_mdef_that_is_not_binary_is_refused(tmp_path):
    path = tmp_path / "mdef"
    path.write_text("0.3\n42 n_base\n")
    with pytest.raises(ValueError, match=f"{path}: not a binary pocketsphinx mdef"):
        read_mdef(path)


def test_bigram_model_is_normalised_and_keeps_unseen_words(tmp_path):
    sentences = [["a", "b"], ["b", "a", "a"], ["a", "c", "b"]]
    model, counts = estimate_bigram(sentences, ["a", "b", "c", "d"])
    assert counts["tokens"] == 8 and counts["training_word_types"] == 3
    model.write_arpa(tmp_path / "lm.arpa")
    read = read_arpa(tmp_path / "lm.arpa")  # what the graph is built from
    unigram = {word: 10**p for word, p in read.unigram.items()}
    assert sum(unigram.values()) == pytest.approx(1.0)
    assert unigram["d"] > 0  # in the vocabulary, never seen: the back-off mass
    for history in ("<s>", "a", "b", "c"):
        assert read.distribution(history).sum() == pytest.approx(1.0)
    with pytest.raises(ValueError, match=r"missing from the vocabulary: \['c'\]"):
        estimate_bigram(sentences, ["a", "b"])


def test_bigram_discounting_by_hand():
    """Interpolated absolute discounting, D = 0.75, computed by hand: 11 predicted tokens (a 4,
    b 3, c 1, </s> 3); the 3 / 11 freed by discounting the 4 seen types spread evenly over the 5
    predicted words; a history keeps D · followers / count for the unigram."""
    model, _ = estimate_bigram([["a", "b"], ["b", "a", "a"], ["a", "c", "b"]], "abcd")
    unigram = {"a": 3.85 / 11, "b": 2.85 / 11, "c": 0.85 / 11, "d": 0.6 / 11, "</s>": 2.85 / 11}
    for word, probability in unigram.items():
        assert 10 ** model.unigram[word] == pytest.approx(probability)
    expected = {  # (word, history): (count - D) / history count + backoff · unigram
        ("a", "<s>"): 1.25 / 3 + 0.5 * unigram["a"],
        ("b", "<s>"): 0.25 / 3 + 0.5 * unigram["b"],
        ("d", "<s>"): 0.5 * unigram["d"],  # backed off
        ("b", "a"): 0.25 / 4 + 0.75 * unigram["b"],
        ("</s>", "b"): 1.25 / 3 + 0.5 * unigram["</s>"],
        ("c", "b"): 0.5 * unigram["c"],
        ("b", "c"): 0.25 / 1 + 0.75 * unigram["b"],
    }
    for (word, history), probability in expected.items():
        assert 10 ** model.log10_prob(word, history) == pytest.approx(probability)


def two_models():
    """Two bigrams over x, y, </s>, each with one explicit bigram after x."""
    first = BackoffBigram(
        {"x": math.log10(0.5), "y": math.log10(0.3), "</s>": math.log10(0.2)},
        {"x": {"y": math.log10(0.6)}},
        {"x": math.log10(0.4 / 0.7)},
    )
    second = BackoffBigram(
        {"x": math.log10(0.2), "y": math.log10(0.2), "</s>": math.log10(0.6)},
        {"x": {"x": math.log10(0.5)}},
        {"x": math.log10(0.5 / 0.8)},
    )
    return first, second


def test_interpolation_and_backoff_by_hand():
    """0.25 · first + 0.75 · second, computed by hand: both explicit bigrams after x get the
    mixed probability (the other model's backed-off one mixed in), </s> after x the rest of the
    mass in proportion to the mixed unigram; a history neither saw is the mixed unigram."""
    first, second = two_models()
    mixed = interpolate(first, second, 0.25)
    assert 10 ** mixed.unigram["x"] == pytest.approx(0.275)
    assert 10 ** mixed.unigram["</s>"] == pytest.approx(0.5)
    p_y = 0.25 * 0.6 + 0.75 * (0.5 / 0.8 * 0.2)  # 0.24375
    p_x = 0.25 * (0.4 / 0.7 * 0.5) + 0.75 * 0.5  # 0.44643
    assert 10 ** mixed.log10_prob("y", "x") == pytest.approx(p_y)
    assert 10 ** mixed.log10_prob("x", "x") == pytest.approx(p_x)
    backoff = (1 - p_y - p_x) / (1 - 0.275 - 0.225)
    assert 10 ** mixed.backoff["x"] == pytest.approx(backoff)
    assert 10 ** mixed.log10_prob("</s>", "x") == pytest.approx(backoff * 0.5)
    assert mixed.distribution("x").sum() == pytest.approx(1.0)
    assert 10 ** mixed.log10_prob("y", "<s>") == pytest.approx(0.225)
    sentences = [["x", "y"], ["x", "x"]]
    weight, perplexities = choose_interpolation_weight(first, second, sentences, [0.0, 0.5, 1.0])
    assert perplexities[weight] == min(perplexities.values())
    assert perplexities[0.0] == pytest.approx(second.perplexity(sentences)["perplexity"])


def test_perplexity_and_oov_by_hand():
    first, _ = two_models()
    stats = first.perplexity([["x", "y"], ["z", "x"]])  # z: out of the vocabulary
    # scored: x|<s> 0.5, y|x 0.6, </s>|y 0.2, x|<s> (after the OOV) 0.5, </s>|x 0.4/0.7 · 0.2
    log_total = math.log10(0.5 * 0.6 * 0.2 * 0.5 * 0.4 / 0.7 * 0.2)
    assert stats["perplexity"] == pytest.approx(10 ** (-log_total / 5))
    assert stats["oov_rate"] == 0.25 and stats["words"] == 4


def test_generic_bigram_matches_pocketsphinx_queries():
    """The generic LM restricted to a vocabulary keeps pocketsphinx's conditional
    probabilities up to the renormalisation: ratios of two words after the same history are
    its own (explicit bigrams and backed-off ones), every history's distribution sums to 1."""
    from pocketsphinx import Config, LogMath, NGramModel

    vocabulary = ["THE", "OF", "CAT", "SAT", "ON", "MAT", "A", "DOG", "ZORBLAXIAN"]
    model, counts = generic_bigram(vocabulary)
    assert counts == {"vocabulary": 9, "known_words": 8, "bigrams": model.num_bigrams}
    config, log_math = Config(), LogMath(1.0001)
    reference = NGramModel(config, log_math, str(default_generic_lm_path()))

    def log10_reference(word, history):
        query = [
            word if word == "</s>" else word.lower(),
            "<s>" if history == "<s>" else history.lower(),
        ]
        return reference.prob(query) * math.log10(1.0001)

    for history in ["<s>", "THE", "CAT", "ON"]:
        assert model.distribution(history).sum() == pytest.approx(1.0)
        for word in ["CAT", "OF", "MAT", "</s>"]:
            ratio = model.log10_prob(word, history) - model.log10_prob("THE", history)
            expected = log10_reference(word, history) - log10_reference("THE", history)
            assert ratio == pytest.approx(expected, abs=5e-4)  # its integer log rounding
    assert model.num_bigrams > 0 and "ZORBLAXIAN" not in model.bigram  # unknown: backs off
    assert 10 ** model.unigram["ZORBLAXIAN"] > 0


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda text: text.replace("\\end\\", ""), r"line \d+: no \\end\\"),
        (
            lambda text: text.replace("ngram 2=", "ngram 2=1"),
            r"line 3: the header says 1\d* 2-grams",
        ),
        (lambda text: text.replace("\t-0.", "\tx0.", 1), r"line \d+: not a number"),
    ],
    ids=["no end", "count", "number"],
)
def test_damaged_arpa_is_refused_naming_the_line(tmp_path, damage, message):
    model, _ = estimate_bigram([["a", "b"], ["b", "a"]], "ab")
    model.write_arpa(tmp_path / "lm.arpa")
    damaged = tmp_path / "damaged.arpa"
    damaged.write_text(damage((tmp_path / "lm.arpa").read_text()))
    with pytest.raises(ValueError, match=f"damaged.arpa, {message}"):
        arpa_to_fst(damaged, ["a", "b"])


def reference_words(manifest):
    with open(manifest, newline="") as csv_file:
        return {row["ID"]: normalize_words(row["words"].split()) for row in csv.DictReader(csv_file)}


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
    fst, words, files = graph
    assert read_arpa_text(files["lm.arpa"]).words[:-1] == words  # the LM kept beside it
    assert json.loads(files["lm.json"])["language_model"] == "train"
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


def read_arpa_text(text: str):
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / "lm.arpa").write_text(text)
        return read_arpa(Path(folder) / "lm.arpa")


def test_interpolated_language_model_is_chosen_on_valid(speechocean_prepared, tmp_path):
    """language_model: interpolated: the training bigram's weight is the valid perplexity's
    best, and the ARPA and statistics land in the graph cache."""
    decoder = WordDecoder(
        functools.partial(
            senone_graph,
            labels=speechocean_prepared / "labels.txt",
            lexicon=LEXICON,
            train_csv=speechocean_prepared / "train.csv",
            vocabulary="train",
            language_model="interpolated",
            valid_csv=speechocean_prepared / "valid.csv",
        ),
        tmp_path / "graph",
    )
    decoder.prepare(len(CI_STATES) + KEPT)
    stats = json.loads((tmp_path / "graph" / "lm.json").read_text())
    by_weight = stats["valid_perplexity_by_weight"]
    assert by_weight[f"{stats['train_weight']:g}"] == min(by_weight.values())
    assert stats["valid"]["perplexity"] == pytest.approx(min(by_weight.values()), abs=0.01)
    lm = read_arpa(tmp_path / "graph" / "lm.arpa")
    assert lm.words[:-1] == decoder.words
    assert json.loads((tmp_path / "graph" / "graph_stats.json").read_text())["arcs"] > 0


def test_training_vocabulary_leaves_unseen_words_out(speechocean_prepared):
    _, words, _ = senone_graph(
        speechocean_prepared / "labels.txt",
        LEXICON,
        speechocean_prepared / "train.csv",
        vocabulary="train",
    )
    training = {
        w for ws in reference_words(speechocean_prepared / "train.csv").values() for w in ws
    }
    assert set(words) == training


def test_training_utterance_with_a_word_without_pronunciation_is_left_out(
    speechocean_prepared, tmp_path, caplog
):
    """Issue 24: the aligner leaves such an utterance out of the targets, and the graph refused
    the whole run naming no utterance. Now both leave it out: the graph names it and counts it,
    and its words stay out of the language model's text."""
    manifest = tmp_path / "train.csv"
    text = (speechocean_prepared / "train.csv").read_text().splitlines()
    first = text[1].split(",")
    first[4] = first[4] + " Zorblaxian"
    manifest.write_text("\n".join([text[0], ",".join(first), *text[2:]]) + "\n")
    _, words, extra = senone_graph(
        speechocean_prepared / "labels.txt", LEXICON, manifest, vocabulary="train"
    )
    assert "1 utterance(s) left out of the language model's text" in caplog.text
    assert f"'{first[0]}' ['Zorblaxian']" in caplog.text  # the manifest's spelling
    assert json.loads(extra["lm.json"])["train_utterances_left_out"] == 1
    others = {w for utt, ws in reference_words(manifest).items() if utt != first[0] for w in ws}
    assert set(words) == others  # the left-out sentence's words are not
    manifest.write_text(f"{text[0]}\n{','.join(first)}\n")
    with pytest.raises(ValueError, match="no utterance has a pronunciation for all its words"):
        senone_graph(speechocean_prepared / "labels.txt", LEXICON, manifest)


def test_transcripts_case_and_punctuation(speechocean_prepared, tmp_path):
    """Issue 24: "Hello, world!" reached the aligner as 'hello,' / 'world!' and was left out,
    and a lexicon-only word in mixed case aligned and then failed the graph. One rule now, for
    the aligner, the graph's lexicon and LM, and scoring."""
    assert normalize_words("Hello, WORLD! (Don't) e-mail - ... 'em dogs'".split()) == [
        "hello",
        "world",
        "don't",
        "e-mail",
        "'em",
        "dogs'",
    ]
    lexicon = tmp_path / "lexicon.txt"
    lexicon.write_text("ZORBLAXIAN Z AO R B L AE K S IY AH N\n")
    manifest = tmp_path / "train.csv"
    manifest.write_text(
        'ID,duration,wav,words\nu1,1.0,a.wav,"Hello, Zorblaxian!"\nu2,1.0,b.wav,World.\n'
    )
    _, words, extra = senone_graph(
        speechocean_prepared / "labels.txt", lexicon, manifest, vocabulary="train"
    )
    assert words == ["hello", "world", "zorblaxian"]
    assert json.loads(extra["lm.json"])["train_utterances_left_out"] == 0
    aligner = SenoneAligner(read_lexicon(lexicon))
    assert aligner.unknown_words(normalize_words("Hello, Zorblaxian!".split())) == []


def test_no_lexicon_uses_the_aligners_dictionary(speechocean_prepared, tmp_path, caplog):
    """``lexicon: null`` (issue 24: a bare TypeError): the aligner's dictionary alone."""
    manifest = tmp_path / "train.csv"
    manifest.write_text("ID,duration,wav,words\nu1,1.0,a.wav,HELLO WORLD\nu2,1.0,b.wav,WORLD\n")
    graph, words, _ = senone_graph(speechocean_prepared / "labels.txt", None, manifest)
    assert words == ["hello", "world"] and graph.num_states > 0
    manifest.write_text(
        "ID,duration,wav,words\nu1,1.0,a.wav,HELLO ZORBLAXIAN\nu2,1.0,b.wav,WORLD\n"
    )
    _, words, _ = senone_graph(speechocean_prepared / "labels.txt", None, manifest)
    assert words == ["world"] and "lexicon: null nor the aligner's dictionary" in caplog.text


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


def test_transcript_graphs_realign_the_aligners_labels(speechocean_prepared):
    """Realignment (Kaldi's align.sh with a neural model): a "model" certain of the forced
    aligner's labels, aligned through each training transcript's graph (every pronunciation,
    optional silence), gets those labels back, frame for frame."""
    num_labels = len(CI_STATES) + KEPT
    alignments = read_alignments(speechocean_prepared / "train.ali", num_labels)
    graphs = TranscriptGraphs(
        speechocean_prepared / "labels.txt",
        LEXICON,
        self_loop_probabilities(alignments, num_labels),
        self_loop_scale=0.1,
    )
    references = reference_words(speechocean_prepared / "train.csv")
    assert graphs(["hello", "zorblaxian"]) is None  # a word without pronunciation
    for utt_id in sorted(alignments)[:8]:
        labels = alignments[utt_id]
        loglikes = np.full((len(labels), num_labels), -10.0, dtype=np.float32)
        loglikes[np.arange(len(labels)), labels] = 0.0
        best = decode(graphs(references[utt_id]), loglikes, beam=10.0, max_active=100_000)
        assert best["reached_final"] and np.array_equal(best["labels"], labels), utt_id

"""Language models for the decoding graphs: a bigram estimated from training transcripts, written
as ARPA, and an ARPA model turned into the grammar FST G (:func:`arpa_to_fst`, with kaldilm).

No pip package estimates an ARPA model (kenlm's ``lmplz`` is a C++ program, SRILM is not
free software; icefall keeps its own estimator script), so this is the one piece written here:
interpolated absolute discounting (Ney, Essen and Kneser, 1994) over a fixed vocabulary. The
unigram distribution is interpolated with a uniform one over the vocabulary, so a vocabulary
word never seen in the training text keeps a small probability (the back-off mass) instead of
being impossible; ``kaldilm`` then turns the ARPA file into the grammar FST G."""

import math
import tempfile
from collections import Counter
from pathlib import Path
from typing import Dict, Iterable, Sequence

import kaldifst
import kaldilm

BACKOFF_SYMBOL = "#0"


def arpa_to_fst(arpa, words: Sequence[str]) -> kaldifst.StdVectorFst:
    """G of an ARPA language model over ``words`` (ids 1..), back-off arcs on ``#0`` (id
    ``len(words) + 1``), sentence boundaries as epsilons (Kaldi's ``arpa2fst``)."""
    with tempfile.TemporaryDirectory() as folder:
        symbol_table, fst = Path(folder) / "words.txt", Path(folder) / "G.fst"
        symbols = ["<eps>", *words, BACKOFF_SYMBOL, "<s>", "</s>"]
        symbol_table.write_text("".join(f"{s} {i}\n" for i, s in enumerate(symbols)))
        kaldilm.arpa2fst(
            str(arpa),
            str(fst),
            disambig_symbol=BACKOFF_SYMBOL,
            read_symbol_table=str(symbol_table),
            max_arpa_warnings=0,
        )
        return kaldifst.StdVectorFst.read(str(fst))


BOS, EOS = "<s>", "</s>"


def write_bigram_arpa(
    sentences: Iterable[Sequence[str]], vocabulary: Iterable[str], path, discount: float = 0.75
) -> Dict[str, int]:
    """Estimate a bigram model of ``sentences`` (lists of words) over ``vocabulary`` and write
    it to ``path`` in ARPA format. Training words outside the vocabulary are a ``ValueError``.
    Returns counts: sentences, tokens, vocabulary, training word types, bigrams."""
    if not 0 < discount < 1:
        raise ValueError(f"discount must be in (0, 1), got {discount}.")
    unigrams, bigrams, sentence_count = Counter(), Counter(), 0
    for sentence in sentences:
        tokens = [BOS, *sentence, EOS]
        unigrams.update(tokens[1:])
        bigrams.update(zip(tokens[:-1], tokens[1:]))
        sentence_count += 1
    vocabulary = set(vocabulary)
    unknown = sorted(set(unigrams) - vocabulary - {EOS})
    if unknown:
        raise ValueError(f"Training words missing from the vocabulary: {unknown[:10]}")
    if not sentence_count:
        raise ValueError("No training sentences to estimate a language model from.")
    predicted = sorted(vocabulary) + [EOS]  # what the model assigns probability to
    tokens = sum(unigrams.values())
    uniform_mass = discount * len(unigrams) / tokens  # what discounting frees for the uniform
    unigram = {
        word: max(unigrams[word] - discount, 0) / tokens + uniform_mass / len(predicted)
        for word in predicted
    }
    history_counts, followers = Counter(), Counter()
    for (history, _), count in bigrams.items():
        history_counts[history] += count
        followers[history] += 1
    backoff = {h: discount * followers[h] / history_counts[h] for h in history_counts}

    lines = ["\\data\\", f"ngram 1={len(predicted) + 1}", f"ngram 2={len(bigrams)}", ""]
    lines.append("\\1-grams:")
    lines.append(f"-99\t{BOS}\t{math.log10(backoff[BOS]):.6f}")
    for word in predicted:
        bow = f"\t{math.log10(backoff[word]):.6f}" if word in backoff else ""
        lines.append(f"{math.log10(unigram[word]):.6f}\t{word}{bow}")
    lines += ["", "\\2-grams:"]
    for (history, word), count in sorted(bigrams.items()):
        probability = (count - discount) / history_counts[history]
        probability += backoff[history] * unigram[word]
        lines.append(f"{math.log10(probability):.6f}\t{history} {word}")
    lines += ["", "\\end\\", ""]
    Path(path).write_text("\n".join(lines), encoding="utf-8")
    return {
        "sentences": sentence_count,
        "tokens": tokens - sentence_count,  # words, without the sentence ends
        "vocabulary": len(vocabulary),
        "training_word_types": len(unigrams) - 1,
        "bigrams": len(bigrams),
    }

"""Language models for the decoding graphs: back-off bigrams over the decoding vocabulary, read
and written as ARPA, and an ARPA model turned into the grammar FST G (:func:`arpa_to_fst`, with
kaldilm).

Three bigrams are built here, since no pip package estimates or mixes ARPA models (kenlm's
``lmplz`` is a C++ program, SRILM is not free software; icefall keeps its own estimator
script):

- :func:`estimate_bigram`: the training transcripts' bigram, interpolated absolute discounting
  (Ney, Essen and Kneser, 1994). Its unigram distribution is interpolated with a uniform one
  over the vocabulary, so a vocabulary word never seen in the training text keeps a small
  probability (the back-off mass) instead of being impossible.
- :func:`generic_bigram`: the bigram level of the generic US-English trigram that pocketsphinx's
  wheel ships (72,547 words), restricted to the decoding vocabulary and renormalised. Its ARPA
  export crashes (``../shared/notes``), so the model is rebuilt from ``prob()`` queries: a
  history's explicit bigrams are the words whose probability is not its back-off weight times
  their unigram probability (within the model's integer log rounding).
- :func:`interpolate`: the two mixed with a weight chosen on valid perplexity, written as one
  back-off model as SRILM's ``-mix-lm`` does (explicit bigrams of either model get the mixed
  probability; a history's back-off weight renormalises the rest, which backs off to the mixed
  unigram).
"""

import math
import tempfile
from collections import Counter
from pathlib import Path
from typing import Dict, Iterable, List, Sequence, Tuple

import kaldifst
import kaldilm
import numpy as np

BACKOFF_SYMBOL = "#0"
BOS, EOS = "<s>", "</s>"
LOG10_ZERO = -99.0  # ARPA's log10 probability of <s>, which is never predicted
POCKETSPHINX_LOGZERO = -536870912  # NGramModel.prob of a word it does not know
POCKETSPHINX_LOG10 = math.log10(1.0001)  # its probabilities are in units of log base 1.0001


class BackoffBigram:
    """A back-off bigram over a vocabulary, as ARPA holds one (log10 values).

    Arguments
    ---------
    unigram : dict
        Word -> log10 P(word), for every predicted word (the vocabulary and ``</s>``).
    bigram : dict
        History -> {word -> log10 P(word | history)}: the explicit bigrams.
    backoff : dict
        History -> log10 of its back-off weight (histories without one back off at weight 1).
    """

    def __init__(
        self,
        unigram: Dict[str, float],
        bigram: Dict[str, Dict[str, float]],
        backoff: Dict[str, float],
    ):
        self.unigram, self.bigram, self.backoff = unigram, bigram, backoff

    @property
    def words(self) -> List[str]:
        """The predicted words (the vocabulary and ``</s>``), in unigram order."""
        return list(self.unigram)

    @property
    def num_bigrams(self) -> int:
        return sum(len(followers) for followers in self.bigram.values())

    def log10_prob(self, word: str, history: str) -> float:
        """log10 P(word | history), backing off where the bigram is not explicit."""
        explicit = self.bigram.get(history, {}).get(word)
        if explicit is not None:
            return explicit
        return self.backoff.get(history, 0.0) + self.unigram[word]

    def distribution(self, history: str) -> np.ndarray:
        """P(word | history) for every predicted word, in :attr:`words` order."""
        return np.array([10 ** self.log10_prob(word, history) for word in self.unigram])

    def perplexity(self, sentences: Iterable[Sequence[str]]) -> Dict[str, float]:
        """Perplexity over the predicted tokens (words and sentence ends) of ``sentences``;
        a word outside the vocabulary is not scored, it is counted (``oov_rate`` of the words)
        and the next word is scored after ``<s>``, as SRILM's ``ppl`` does."""
        log10_total, scored, words, oovs = 0.0, 0, 0, 0
        for sentence in sentences:
            history = BOS
            for word in [*sentence, EOS]:
                words += word != EOS
                if word not in self.unigram:
                    oovs, history = oovs + 1, BOS
                    continue
                log10_total += self.log10_prob(word, history)
                scored, history = scored + 1, word
        return {
            "perplexity": 10 ** (-log10_total / max(scored, 1)),
            "oov_rate": oovs / max(words, 1),
            "words": words,
        }

    def write_arpa(self, path) -> None:
        """The model as an ARPA file (``<s>`` a unigram of probability 0 with its back-off)."""
        histories = [BOS, *self.unigram]
        lines = ["\\data\\", f"ngram 1={len(self.unigram) + 1}", f"ngram 2={self.num_bigrams}"]
        lines += ["", "\\1-grams:"]
        for word in histories:
            probability = LOG10_ZERO if word == BOS else self.unigram[word]
            bow = f"\t{self.backoff[word]:.6f}" if word in self.backoff else ""
            lines.append(f"{probability:.6f}\t{word}{bow}")
        lines += ["", "\\2-grams:"]
        for history in histories:
            for word, probability in sorted(self.bigram.get(history, {}).items()):
                lines.append(f"{probability:.6f}\t{history} {word}")
        lines += ["", "\\end\\", ""]
        Path(path).write_text("\n".join(lines), encoding="utf-8")


def read_arpa(path) -> BackoffBigram:
    """A unigram or bigram ARPA file, checked: the header's counts against the sections, every
    line's fields and numbers, and the final ``\\end\\``; ``ValueError`` naming the file and
    line of the first fault (a damaged model fails before any training)."""
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    counts, order, entries = {}, None, {1: [], 2: []}

    def fault(number: int, what: str) -> ValueError:
        return ValueError(f"{path}, line {number}: {what}")

    ended = False
    for number, line in enumerate(lines, start=1):
        text = line.strip()
        if not text or ended:
            if ended and text:
                raise fault(number, "text after \\end\\.")
            continue
        if text == "\\data\\":
            order = 0
        elif text.startswith("ngram ") and order == 0:
            size, _, count = text[len("ngram ") :].partition("=")
            if not (size.isdigit() and count.isdigit()):
                raise fault(number, f"bad count line {text!r}.")
            counts[int(size)] = (int(count), number)
        elif text in ("\\1-grams:", "\\2-grams:"):
            order = int(text[1])
        elif text == "\\end\\":
            ended = True
        elif text.startswith("\\"):
            raise fault(number, f"unexpected section {text!r} (only unigrams and bigrams).")
        elif order in (1, 2):
            fields = line.split()
            if len(fields) not in (order + 1, order + 2):
                raise fault(number, f"{len(fields)} fields in a {order}-gram line.")
            try:
                numbers = [float(fields[0])] + [float(value) for value in fields[order + 1 :]]
            except ValueError:
                raise fault(number, f"not a number in {text!r}.") from None
            entries[order].append((number, fields[1 : order + 1], numbers))
        else:
            raise fault(number, f"{text!r} outside a section.")
    if not ended:
        raise fault(len(lines), "no \\end\\: the file is cut short.")
    if set(counts) - {1, 2} or 1 not in counts:
        raise fault(1, f"the header declares {sorted(counts)}-grams: a uni- or bigram model only.")
    for size, (count, number) in counts.items():
        if len(entries[size]) != count:
            found = len(entries[size])
            raise fault(number, f"the header says {count} {size}-grams, the file has {found}.")
    unigram, backoff, bigram = {}, {}, {}
    for number, (word,), numbers in entries[1]:
        if word != BOS:
            unigram[word] = numbers[0]
        if len(numbers) == 2:
            backoff[word] = numbers[1]
    for number, (history, word), numbers in entries[2]:
        if word not in unigram or (history not in unigram and history != BOS):
            raise fault(number, f"bigram '{history} {word}' of a word that is not a unigram.")
        bigram.setdefault(history, {})[word] = numbers[0]
    return BackoffBigram(unigram, bigram, backoff)


def estimate_bigram(
    sentences: Iterable[Sequence[str]], vocabulary: Iterable[str], discount: float = 0.75
) -> Tuple[BackoffBigram, Dict[str, int]]:
    """The bigram of ``sentences`` (lists of words) over ``vocabulary``, interpolated absolute
    discounting with ``discount``, and counts: sentences, tokens, vocabulary, training word
    types, bigrams. Training words outside the vocabulary are a ``ValueError``."""
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
    bigram = {}
    for (history, word), count in bigrams.items():
        probability = (count - discount) / history_counts[history]
        probability += backoff[history] * unigram[word]
        bigram.setdefault(history, {})[word] = math.log10(probability)
    model = BackoffBigram(
        {word: math.log10(p) for word, p in unigram.items()},
        bigram,
        {history: math.log10(weight) for history, weight in backoff.items()},
    )
    counts = {
        "sentences": sentence_count,
        "tokens": tokens - sentence_count,  # words, without the sentence ends
        "vocabulary": len(vocabulary),
        "training_word_types": len(unigrams) - 1,
        "bigrams": len(bigrams),
    }
    return model, counts


def default_generic_lm_path() -> Path:
    """pocketsphinx's bundled generic US-English trigram (binary trie)."""
    import pocketsphinx  # imported here: only this language model needs it

    return Path(pocketsphinx.get_model_path()) / "en-us" / "en-us.lm.bin"


def generic_bigram(vocabulary: Iterable[str], lm_path=None) -> Tuple[BackoffBigram, Dict]:
    """The bigram level of pocketsphinx's generic LM (``lm_path``, default the bundled one)
    restricted to ``vocabulary`` (looked up in lower case) and renormalised over it and
    ``</s>``; and counts (vocabulary words it knows, explicit bigrams kept). A word it does not
    know gets the smallest unigram probability of those it knows, and no explicit bigram."""
    from pocketsphinx import Config, LogMath, NGramModel

    config, log_math = Config(), LogMath(1.0001)  # kept referenced while the model is used
    model = NGramModel(config, log_math, str(lm_path or default_generic_lm_path()))
    predicted = sorted(set(vocabulary)) + [EOS]
    queries = [word if word == EOS else word.lower() for word in predicted]
    unigram_logs = np.array([model.prob([word]) for word in queries], dtype=np.int64)
    known = unigram_logs > POCKETSPHINX_LOGZERO
    floor = unigram_logs[known].min()
    unigram = 10.0 ** (np.where(known, unigram_logs, floor) * POCKETSPHINX_LOG10)
    unigram_total = unigram.sum()
    log10_unigram = np.log10(unigram / unigram_total)
    bigram, backoff = {}, {}
    histories = [BOS] + [word for word, is_known in zip(predicted[:-1], known) if is_known]
    for history in histories:
        query = BOS if history == BOS else history.lower()
        row_logs = np.array([model.prob([word, query]) for word in queries], dtype=np.int64)
        ratios = (row_logs - unigram_logs)[known]
        values, frequencies = np.unique(ratios, return_counts=True)
        backoff_log = values[frequencies.argmax()]  # most words back off: their common ratio
        # the model rounds each log to an integer: a ratio within 1 of it is a back-off too
        explicit = known & (np.abs(row_logs - unigram_logs - backoff_log) > 1)
        row = np.where(explicit, 10.0 ** (row_logs * POCKETSPHINX_LOG10), 0.0)
        row_backed_off = 10.0 ** (backoff_log * POCKETSPHINX_LOG10) * unigram
        row = np.where(explicit, row, row_backed_off)
        total = row.sum()  # the restricted distribution's mass: renormalised to 1
        bigram[history] = {
            predicted[index]: math.log10(row[index] / total) for index in np.flatnonzero(explicit)
        }
        backoff[history] = math.log10(
            10.0 ** (backoff_log * POCKETSPHINX_LOG10) * unigram_total / total
        )
    counts = {
        "vocabulary": len(predicted) - 1,
        "known_words": int(known[:-1].sum()),
        "bigrams": sum(len(followers) for followers in bigram.values()),
    }
    return BackoffBigram(dict(zip(predicted, log10_unigram)), bigram, backoff), counts


def interpolate(first: BackoffBigram, second: BackoffBigram, weight: float) -> BackoffBigram:
    """``weight · first + (1 − weight) · second`` as one back-off model over the same words:
    every explicit bigram of either gets the mixed probability, unigrams are mixed, and each
    history's back-off weight gives the other words the rest of its mass in proportion to the
    mixed unigram (SRILM's static ``-mix-lm``: exact for explicit bigrams and unigrams)."""
    if first.words != second.words:
        raise ValueError("Interpolated language models must predict the same words.")
    if not 0 <= weight <= 1:
        raise ValueError(f"The interpolation weight must be in [0, 1], got {weight}.")

    def mix(log_first: float, log_second: float) -> float:
        return math.log10(weight * 10**log_first + (1 - weight) * 10**log_second)

    unigram = {word: mix(first.unigram[word], second.unigram[word]) for word in first.unigram}
    bigram, backoff = {}, {}
    for history in [BOS, *first.unigram]:
        explicit = set(first.bigram.get(history, {})) | set(second.bigram.get(history, {}))
        if not explicit and history not in first.backoff and history not in second.backoff:
            continue  # a history neither model has seen backs off at weight 1 in both
        bigram[history] = {
            word: mix(first.log10_prob(word, history), second.log10_prob(word, history))
            for word in explicit
        }
        kept = sum(10**p for p in bigram[history].values())
        kept_unigram = sum(10 ** unigram[word] for word in explicit)
        backoff[history] = math.log10(max(1 - kept, 1e-12) / max(1 - kept_unigram, 1e-12))
    return BackoffBigram(unigram, {h: b for h, b in bigram.items() if b}, backoff)


def arpa_to_fst(arpa, words: Sequence[str]) -> kaldifst.StdVectorFst:
    """G of an ARPA language model over ``words`` (ids 1..), back-off arcs on ``#0`` (id
    ``len(words) + 1``), sentence boundaries as epsilons (Kaldi's ``arpa2fst``). The file is
    checked with :func:`read_arpa` first."""
    read_arpa(arpa)
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


def choose_interpolation_weight(
    first: BackoffBigram,
    second: BackoffBigram,
    sentences: Sequence[Sequence[str]],
    weights: Sequence[float] = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9),
) -> Tuple[float, Dict[float, float]]:
    """The weight of ``first`` whose :func:`interpolate` has the lowest perplexity on
    ``sentences`` (e.g. the valid transcripts), and the perplexity at every weight."""
    perplexities = {
        weight: interpolate(first, second, weight).perplexity(sentences)["perplexity"]
        for weight in weights
    }
    return min(weights, key=perplexities.get), perplexities


LANGUAGE_MODELS = ("train", "generic", "interpolated")


def build_language_model(
    kind: str,
    train_sentences: Sequence[Sequence[str]],
    vocabulary: Sequence[str],
    valid_sentences: Sequence[Sequence[str]] = None,
    discount: float = 0.75,
    weights: Sequence[float] = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9),
    generic_lm=None,
) -> Tuple[BackoffBigram, Dict]:
    """The decoding graph's language model over ``vocabulary`` and its statistics: ``train``
    (the training transcripts' bigram), ``generic`` (pocketsphinx's, restricted) or
    ``interpolated`` (the two, the training bigram's weight chosen on the perplexity of
    ``valid_sentences``); statistics include the perplexity and OOV rate of the valid text."""
    if kind not in LANGUAGE_MODELS:
        raise ValueError(f"language_model must be one of {LANGUAGE_MODELS}, got {kind!r}.")
    if kind == "interpolated" and not valid_sentences:
        raise ValueError("An interpolated language model needs valid transcripts (valid_csv).")
    stats = {"language_model": kind}
    if kind != "generic":
        train_model, stats["train_counts"] = estimate_bigram(train_sentences, vocabulary, discount)
        model = train_model
    if kind != "train":
        model, stats["generic_counts"] = generic_bigram(vocabulary, generic_lm)
    if kind == "interpolated":
        weight, perplexities = choose_interpolation_weight(
            train_model, model, valid_sentences, weights
        )
        stats["train_weight"] = weight
        stats["valid_perplexity_by_weight"] = {
            f"{w:g}": round(p, 2) for w, p in perplexities.items()
        }
        model = interpolate(train_model, model, weight)
    stats["bigrams"] = model.num_bigrams
    if valid_sentences:
        stats["valid"] = model.perplexity(valid_sentences)
    return model, stats

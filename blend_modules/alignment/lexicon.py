"""The CMU phone set of pocketsphinx's en-us model, CMU-style pronunciation lexicons
(``WORD PH1 PH2 ...``, alternative pronunciations as ``WORD(2)``) and the transcript rule, shared
by the aligner, the senone decoding graph's lexicon and language model, and word scoring.

The transcript rule (:func:`normalize_words`): words are lower-cased and lose the punctuation at
their edges (``"Hello,"`` -> ``hello``, ``(world)!`` -> ``world``); what is inside a word stays
(``DON'T`` -> ``don't``, ``e-mail``), and so do apostrophes at its edges (``'em``, ``dogs'``); a
token of punctuation alone (``-``, ``...``) is no word. A corpus lexicon's words follow the
same rule (so ``U.S.`` is ``u.s`` in both); the aligner's own dictionary is looked up as it is."""

import logging
import re
from pathlib import Path
from typing import Dict, Iterable, List

logger = logging.getLogger(__name__)

SILENCE_PHONE = "SIL"


EDGE_PUNCTUATION = re.compile(r"^[^\w']+|[^\w']+$")  # not a letter, digit or apostrophe


STRESSED_PHONE = re.compile(r"([A-Z]+)[012]?")  # a CMU phone and its stress digit, if any


# the phones of the aligner's dictionary (CMUdict's 39) and silence, 3 HMM states each
CMU_PHONES = (
    "AA AE AH AO AW AY B CH D DH EH ER EY F G HH IH IY JH K L M N NG OW OY P R S SH T TH UH UW "
    "V W Y Z ZH"
).split()


def normalize_word(word: str) -> str:
    """One word under the transcript rule (empty if it is punctuation alone)."""
    return EDGE_PUNCTUATION.sub("", word.lower())


def normalize_words(words: Iterable[str]) -> List[str]:
    """A transcript's words under the transcript rule (the module's docstring), e.g.
    ``normalize_words("Hello, world!".split()) == ["hello", "world"]``."""
    return [word for word in map(normalize_word, words) if word]


def manifest_spellings(words: Iterable[str]) -> Dict[str, str]:
    """Each normalized word -> how the manifest spells it (its first spelling), for messages."""
    spellings = {}
    for word in words:
        spellings.setdefault(normalize_word(word), word)
    return spellings


def read_lexicon(path, normalize: bool = True) -> Dict[str, List[str]]:
    """A CMU-phone lexicon (``WORD PH1 PH2 ...`` per line, stress digits and CMUdict's variant
    marks ``WORD(2)`` allowed) as word -> its distinct pronunciations (space-separated phones
    without stress digits), in the file's order; ``ValueError`` naming the line for a word
    without phones or a phone outside the CMU set (one stress digit at most: ``AA00`` is no
    ``AA``). Blank lines are skipped. Words follow the transcript rule unless ``normalize`` is
    False (the aligner's own dictionary, looked up as it is: ``a.``, the letter, is not ``a``)."""
    lexicon = {}
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) == 1:
            raise ValueError(f"{path}:{number}: word '{fields[0]}' has no phones.")
        stressed = [STRESSED_PHONE.fullmatch(phone) for phone in fields[1:]]
        unknown = [
            phone
            for phone, match in zip(fields[1:], stressed)
            if match is None or match[1] not in CMU_PHONES
        ]
        if unknown:
            raise ValueError(f"{path}:{number}: phones {unknown} are not CMU phones.")
        phones = [match[1] for match in stressed]
        word = re.sub(r"\(\d+\)$", "", fields[0])
        word = normalize_word(word) if normalize else word
        pronunciations = lexicon.setdefault(word, [])
        if " ".join(phones) not in pronunciations:
            pronunciations.append(" ".join(phones))
    return lexicon

"""Switchboard text: training transcripts normalised as Kaldi's s5c recipe does, eval2000
references cleaned for scoring, and a GLM normaliser for hypotheses and references.

Training words (ISIP ms98 transcripts) follow s5c's ``swbd1_data_prep.sh`` and
``swbd1_map_words.pl``: ``[silence]`` and the ``<b_aside>``/``<e_aside>`` markers are dropped;
``[noise]``, ``[laughter]`` and ``[vocalized-noise]`` are kept as tokens or dropped;
``[laughter-word]`` -> ``word``; a mispronunciation ``[said/meant]`` -> ``said`` (what was
said, as s5c); partial words keep the spoken part and a hyphen (``ab[solute]-`` -> ``ab-``,
``-[an]y`` -> ``-y``); ``{coinage}`` -> ``coinage``; ``them_1`` -> ``them``. Acronyms, written
``i_b_m``, become spelled letters (``i b m``), as in the eval2000 references.
"""

import logging
import re
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

logger = logging.getLogger(__name__)

DROPPED_MARKERS = {"[silence]", "<b_aside>", "<e_aside>"}
NOISE_TOKENS = {"[noise]", "[laughter]", "[vocalized-noise]"}
HESITATION = "%hesitation"

_LAUGHTER_WORD = re.compile(r"^(-?)\[laughter-(.+)\](-?)$")
_MISPRONUNCIATION = re.compile(r"^\[(.+?)/.+\](-?)$")
_PARTIAL_START = re.compile(r"^-?\[[^][]+\](.+)$")
_PARTIAL_END = re.compile(r"^(.+?)\[[^][]+\]-?$")
_COINAGE = re.compile(r"^\{(.+)\}$")
_WORD_SENSE = re.compile(r"_\d")
_ACRONYM = re.compile(r"^[a-z](_[a-z])+('?s)?$")


def map_word(word: str) -> List[str]:
    """One ms98 word -> its training words (usually one; none for dropped markers)."""
    word = word.lower()
    if word in DROPPED_MARKERS:
        return []
    if word in NOISE_TOKENS:
        return [word]
    word = _LAUGHTER_WORD.sub(r"\1\2\3", word)
    word = _MISPRONUNCIATION.sub(r"\1\2", word)
    word = _PARTIAL_START.sub(r"-\1", word)
    word = _PARTIAL_END.sub(r"\1-", word)
    word = _COINAGE.sub(r"\1", word)
    word = _WORD_SENSE.sub("", word)
    if _ACRONYM.match(word):
        letters = word.split("_")
        return letters  # a trailing "'s" stays on the last letter, as the references write it
    return [word]


def normalize_transcript(words: Sequence[str], keep_noise: bool) -> List[str]:
    """A segment's ms98 words -> training words (noise tokens kept or dropped)."""
    mapped = [token for word in words for token in map_word(word)]
    return mapped if keep_noise else [token for token in mapped if token not in NOISE_TOKENS]


def reference_words(stm_words: Sequence[str]) -> List[str]:
    """eval2000 ``.stm`` words -> the words to score against: lower case, without the
    optionally deletable words in parentheses (``(%hesitation)``, ``(uh)``, ``(th-)``) and
    without ``<...>`` tags. sclite's hubscr would accept either deleting or recognising the
    parenthesised words; dropping them and filtering hesitations from hypotheses (see
    ``GLMNormalizer``) approximates it."""
    kept = []
    for word in stm_words:
        word = word.lower()
        if word.startswith("(") or word.startswith("<"):
            continue
        kept.extend(map_word(word))
    return [word for word in kept if word not in NOISE_TOKENS]


class GLMNormalizer:
    """Applies a NIST GLM file's context-free rules (``[from] => to / [ ] __ [ ]``; ``to`` a
    word, ``[words]`` or ``{first / other / ...}``, of which the first is used) to a word list,
    then drops hesitations, noise tokens and ``<unk>``; use it on hypotheses and references
    alike. Rules with a context other than ``[ ] __ [ ]`` are skipped (counted in the log).

    Arguments
    ---------
    glm : str
        Path of the GLM file (eval2000: ``en20000405_hub5.glm``); None: no mappings.
    """

    _RULE = re.compile(r"^\s*\[([^]]+)\]\s*=>\s*(\{[^}]*\}|\[[^]]*\]|\S+)\s*/\s*(.*?)\s*$")

    def __init__(self, glm: str = None):
        self.glm = glm
        self._rules: Dict[Tuple[str, ...], List[str]] = None

    @property
    def rules(self) -> Dict[Tuple[str, ...], List[str]]:
        """The GLM's rules, read on first use (data preparation may write the file later)."""
        if self._rules is None:
            self._rules = {} if self.glm is None else self.read_rules(Path(self.glm))
            self.longest = max((len(source) for source in self._rules), default=0)
        return self._rules

    def read_rules(self, path: Path) -> Dict[Tuple[str, ...], List[str]]:
        """The file's context-free rules, lower-cased: source words -> replacement words."""
        if not path.is_file():
            raise FileNotFoundError(f"GLM file not found: {path}")
        rules, skipped = {}, 0
        for line in path.read_text(encoding="latin-1").splitlines():
            line = line.split(";;")[0]
            match = self._RULE.match(line)
            if not match:
                continue
            source, target, context = match.groups()
            if context.replace(" ", "") != "[]__[]":
                skipped += 1
                continue
            if target.startswith("{"):
                target = target[1:-1].split("/")[0]
            rules[tuple(source.lower().split())] = target.strip("[]").lower().split()
        logger.info("%s: %d GLM rules, %d context rules skipped.", path, len(rules), skipped)
        return rules

    def __call__(self, words: Sequence[str]) -> List[str]:
        """Map ``words`` by the rules (longest match first), then drop non-words."""
        rules, mapped, position = self.rules, [], 0
        while position < len(words):
            for size in range(min(self.longest, len(words) - position), 0, -1):
                source = tuple(word.lower() for word in words[position : position + size])
                if source in rules:
                    mapped.extend(rules[source])
                    position += size
                    break
            else:
                mapped.append(words[position].lower())
                position += 1
        return [
            word
            for word in mapped
            if word != HESITATION and word != "<unk>" and not word.startswith("[")
        ]

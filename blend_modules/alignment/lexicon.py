"""The CMU phone set of pocketsphinx's en-us model and CMU-style pronunciation lexicons
(``WORD PH1 PH2 ...``, alternative pronunciations as ``WORD(2)``), shared by the aligner and the
senone decoding graph."""

import logging
import re
from pathlib import Path
from typing import Dict, List

logger = logging.getLogger(__name__)

SILENCE_PHONE = "SIL"


# the phones of the aligner's dictionary (CMUdict's 39) and silence, 3 HMM states each
CMU_PHONES = (
    "AA AE AH AO AW AY B CH D DH EH ER EY F G HH IH IY JH K L M N NG OW OY P R S SH T TH UH UW "
    "V W Y Z ZH"
).split()


def read_lexicon(path) -> Dict[str, List[str]]:
    """A CMU-phone lexicon (``WORD PH1 PH2 ...`` per line, stress digits and CMUdict's variant
    marks ``WORD(2)`` allowed) as word (as written) -> its distinct pronunciations
    (space-separated phones without stress digits), in the file's order; ``ValueError`` naming
    the line for a phone outside the CMU set."""
    lexicon = {}
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), start=1):
        fields = line.split()
        if len(fields) < 2:
            continue
        phones = [phone.rstrip("012") for phone in fields[1:]]
        unknown = sorted(set(phones) - set(CMU_PHONES))
        if unknown:
            raise ValueError(f"{path}:{number}: phones {unknown} are not CMU phones.")
        pronunciations = lexicon.setdefault(re.sub(r"\(\d+\)$", "", fields[0]), [])
        if " ".join(phones) not in pronunciations:
            pronunciations.append(" ".join(phones))
    return lexicon

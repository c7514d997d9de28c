"""The forced aligner's triphone -> senone tying, read from pocketsphinx's binary ``mdef``.

pocketsphinx's acoustic model ties the 3 HMM states of every triphone (base phone, left phone,
right phone, position in the word) to senones; the senone frame targets
(:mod:`blend_modules.alignment.senone_targets`) are those senones, so a decoding graph over the same
labels needs the same tying. pocketsphinx's Python API does not expose it, so it is read from
the model's binary ``mdef`` file (layout: pocketsphinx's ``bin_mdef.c``; the file begins with
that description in plain text): a header of counts, the CI phone names, a 4-level tree
(word position -> base -> left -> right -> phone id), the phones (senone-sequence id each) and
the senone sequences.
"""

from pathlib import Path
from typing import Dict, List, Optional, Sequence, Set, Tuple

import numpy as np

WORD_POSITIONS = "ibes"  # pocketsphinx's order: internal, begin, end, single-phone word


HEADER_FIELDS = (
    "n_ciphone n_phone n_emit_state n_ci_sen n_sen n_tmat n_sseq n_ctx n_cd_tree sil".split()
)


def default_mdef_path() -> Path:
    """The ``mdef`` of pocketsphinx's bundled en-us model (the aligner's)."""
    import pocketsphinx  # imported here: only graph building for these targets needs it

    return Path(pocketsphinx.get_model_path()) / "en-us" / "en-us" / "mdef"


class Triphones:
    """Senones of the 3 states of any phone in context, with pocketsphinx's back-off.

    Arguments
    ---------
    mdef : path
        A binary pocketsphinx model definition (default: the bundled en-us model's).
    """

    def __init__(self, mdef=None):
        self.path = Path(mdef or default_mdef_path())
        self.ci_phones, self.states, self.fillers, self.silence = read_mdef(self.path)
        self.phone_ids = {phone: index for index, phone in enumerate(self.ci_phones)}

    def senones(self, base: str, left: str, right: str, position: str) -> Tuple[int, ...]:
        """The senones of ``base`` between ``left`` and ``right`` at word ``position`` (one of
        ``ibes``), backing off as the aligner's decoder does (``bin_mdef_phone_id_nearest``):
        another word position; then silence for a filler context and for the context across
        a word edge (left at the beginning, right at the end), at each word position; then
        the context-independent phone."""
        found = self._at_any_position(base, left, right, position)
        if found is None and self.silence is not None:
            silent_left = left in self.fillers or position in "bs"
            silent_right = right in self.fillers or position in "es"
            new_left = self.silence if silent_left else left
            new_right = self.silence if silent_right else right
            if (new_left, new_right) != (left, right):
                found = self._at_any_position(base, new_left, new_right, position)
        return found if found is not None else self.states[("", base, "", "")]

    def _at_any_position(self, base: str, left: str, right: str, position: str):
        for candidate in (position, *WORD_POSITIONS.replace(position, "")):
            found = self.states.get((candidate, base, left, right))
            if found is not None:
                return found
        return None


def read_mdef(
    path,
) -> Tuple[List[str], Dict[Tuple[str, str, str, str], Tuple[int, ...]], Set[str], Optional[str]]:
    """The CI phone names, every phone's senones keyed ``(position, base, left, right)`` (CI
    phones under ``("", phone, "", "")``), the filler CI phones and the silence phone (None if
    the model has none). ``ValueError`` naming the file if it is not a binary mdef of 3-state
    phones."""
    path = Path(path)
    data = path.read_bytes()
    if data[:4] != b"BMDF":
        raise ValueError(f"{path}: not a binary pocketsphinx mdef (no BMDF marker).")
    description_length = int(np.frombuffer(data, "<i4", 1, 8)[0])
    offset = 12 + description_length
    header = dict(zip(HEADER_FIELDS, np.frombuffer(data, "<i4", len(HEADER_FIELDS), offset)))
    if header["n_emit_state"] != 3:
        raise ValueError(f"{path}: {header['n_emit_state']} states per phone, not 3.")
    offset += 4 * len(HEADER_FIELDS)
    names = data[offset:].split(b"\0", header["n_ciphone"])[: header["n_ciphone"]]
    ci_phones = [name.decode("ascii") for name in names]
    offset += sum(len(name) + 1 for name in names)
    offset = (offset + 3) & ~3  # padded to 4 bytes
    tree_type = np.dtype([("ctx", "<i2"), ("n_down", "<i2"), ("down", "<i4")])
    tree = np.frombuffer(data, tree_type, header["n_cd_tree"], offset)
    offset += tree.nbytes
    phone_type = np.dtype([("ssid", "<i4"), ("tmat", "<i4"), ("attr", "i1", 4)])
    phones = np.frombuffer(data, phone_type, header["n_phone"], offset)
    offset += phones.nbytes
    sseq_size = int(np.frombuffer(data, "<i4", 1, offset)[0])
    sequences = np.frombuffer(data, "<u2", sseq_size, offset + 4).reshape(-1, 3)

    def senones_of(phone_id: int) -> Tuple[int, ...]:
        return tuple(int(s) for s in sequences[phones[phone_id]["ssid"]])

    states = {("", phone, "", ""): senones_of(pid) for pid, phone in enumerate(ci_phones)}
    # the tree: level 0 word positions, then base, left and right phones; leaves hold phone ids
    for position_node in tree[: len(WORD_POSITIONS)]:
        position = WORD_POSITIONS[position_node["ctx"]]
        for base_node in _children(tree, position_node):
            for left_node in _children(tree, base_node):
                for right_node in _children(tree, left_node):
                    key = tuple(
                        ci_phones[node["ctx"]] for node in (base_node, left_node, right_node)
                    )
                    states[(position, *key)] = senones_of(right_node["down"])
    fillers = {phone for phone, entry in zip(ci_phones, phones) if entry["attr"][0]}
    silence = ci_phones[header["sil"]] if header["sil"] >= 0 else None
    return ci_phones, states, fillers, silence


def _children(tree: np.ndarray, node) -> Sequence:
    return tree[node["down"] : node["down"] + node["n_down"]]

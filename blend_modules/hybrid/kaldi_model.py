"""A Kaldi system's decoding graph from Python, without Kaldi binaries: ``HCLG.fst`` and
``words.txt`` (kaldifst), and the transition-id -> pdf table of ``final.mdl``'s transition
model, which no pip package reads (so it is read here).

``final.mdl`` (binary, as Kaldi writes it) begins with the ``<TransitionModel>``: the HMM
topology (per phone, each HMM state's transitions), then one tuple (phone, HMM state, forward
pdf[, self-loop pdf]) per transition state. Kaldi numbers the transitions of every tuple's HMM
state from 1 in tuple order (``TransitionModel::ComputeDerived``): a transition back to the
same state takes the self-loop pdf, any other the forward pdf. The acoustic model after it
(GMM or nnet) is not needed."""

import struct
from pathlib import Path
from typing import List

import kaldifst
import numpy as np

EXTENDED_TOPOLOGY = -1  # the marker of a topology with self-loop pdf classes


class KaldiBinaryReader:
    """Kaldi's binary serialisation: tokens end with a space, a basic type is a size byte and
    the value, an integer vector a size byte, an int32 count and the values."""

    def __init__(self, path):
        self.path = Path(path)
        self.data = self.path.read_bytes()
        if not self.data.startswith(b"\0B"):
            raise ValueError(
                f"{self.path}: not a binary Kaldi file (Kaldi writes models binary; convert a "
                "text one with copy-transition-model --binary=true)."
            )
        self.offset = 2

    def token(self) -> str:
        end = self.data.find(b" ", self.offset)
        if end < 0:
            raise ValueError(f"{self.path}: truncated at byte {self.offset}.")
        token, self.offset = self.data[self.offset : end].decode("latin-1"), end + 1
        return token

    def expect(self, expected: str) -> None:
        token = self.token()
        if token != expected:
            raise ValueError(
                f"{self.path}: expected {expected} at byte {self.offset}, got {token!r}."
            )

    def int32(self) -> int:
        return self._basic("<i")

    def float32(self) -> float:
        return self._basic("<f")

    def _basic(self, fmt: str):
        if self.data[self.offset : self.offset + 1] != b"\4":
            raise ValueError(f"{self.path}: expected a 4-byte value at byte {self.offset}.")
        (value,) = struct.unpack_from(fmt, self.data, self.offset + 1)
        self.offset += 5
        return value

    def int_vector(self) -> List[int]:
        if self.data[self.offset : self.offset + 1] != b"\4":
            raise ValueError(f"{self.path}: expected an int32 vector at byte {self.offset}.")
        (count,) = struct.unpack_from("<i", self.data, self.offset + 1)
        values = np.frombuffer(self.data, "<i4", count, self.offset + 5).tolist()
        self.offset += 5 + 4 * count
        return values


def read_transition_pdfs(path) -> np.ndarray:
    """The pdf of each transition-id of a binary Kaldi model (``final.mdl``), indexed by
    transition-id (entry 0, which is no transition-id, is -1). ``ValueError`` naming the file
    if it is not one."""
    reader = KaldiBinaryReader(path)
    try:
        reader.expect("<TransitionModel>")
        reader.expect("<Topology>")
        reader.int_vector()  # the phones
        phone_to_entry = reader.int_vector()
        count = reader.int32()
        extended = count == EXTENDED_TOPOLOGY
        if extended:
            count = reader.int32()
        entries = []  # per entry, per HMM state: the destination states of its transitions
        for _ in range(count):
            states = []
            for _ in range(reader.int32()):
                reader.int32()  # forward pdf class
                if extended:
                    reader.int32()  # self-loop pdf class
                destinations = []
                for _ in range(reader.int32()):
                    destinations.append(reader.int32())
                    reader.float32()  # the transition's probability
                states.append(destinations)
            entries.append(states)
        reader.expect("</Topology>")
        tuples_token = reader.token()
        if tuples_token not in ("<Triples>", "<Tuples>"):
            raise ValueError(f"{path}: expected <Triples> or <Tuples>, got {tuples_token!r}.")
        pdfs = [-1]
        for _ in range(reader.int32()):
            phone, hmm_state, forward_pdf = reader.int32(), reader.int32(), reader.int32()
            self_loop_pdf = reader.int32() if tuples_token == "<Tuples>" else forward_pdf
            if not 0 <= phone < len(phone_to_entry) or phone_to_entry[phone] < 0:
                raise ValueError(
                    f"{path}: a transition state of phone {phone}, not in the topology."
                )
            for destination in entries[phone_to_entry[phone]][hmm_state]:
                pdfs.append(self_loop_pdf if destination == hmm_state else forward_pdf)
    except (struct.error, IndexError) as error:
        raise ValueError(f"{path}: not a readable Kaldi transition model ({error}).") from None
    return np.array(pdfs, dtype=np.int64)


def read_graph(path) -> kaldifst.StdFst:
    """A Kaldi decoding graph: ``mkgraph.sh`` writes a const FST, others write vector FSTs;
    ``ValueError`` naming the file if it is neither."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such decoding graph.")
    for fst_type in (kaldifst.StdConstFst, kaldifst.StdVectorFst):
        graph = fst_type.read(str(path))  # None (and OpenFst's message) if not of this type
        if graph is not None:
            return graph
    raise ValueError(f"{path}: not an OpenFst graph kaldifst can read (const or vector).")


def read_word_symbols(path) -> List[str]:
    """A Kaldi symbol table (``word id`` per line, ``<eps>`` 0) as the list of words by id − 1;
    ``ValueError`` naming the line if the ids are not 0, 1, 2, ..."""
    words = []
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), start=1):
        fields = line.split()
        if len(fields) != 2 or not fields[1].isdigit() or int(fields[1]) != number - 1:
            raise ValueError(f"{path}:{number}: expected 'word {number - 1}', got {line!r}.")
        if number > 1:
            words.append(fields[0])
    return words

"""The label inventory of senone frame targets: the ``senones_kept`` senones with the most
training frames keep a label of their own, every other senone backs off to its
context-independent state (base phone + state position, :data:`CI_STATES`); written as Kaldi
text alignments and ``labels.txt`` (label id, name, the senone ids it stands for), which the
decoding graph reads back (:func:`read_labels`)."""

import logging
from collections import Counter
from pathlib import Path
from typing import Dict, Iterable, List, Mapping, Sequence, Tuple

import numpy as np

from blend_modules.alignment.aligner import State
from blend_modules.alignment.lexicon import CMU_PHONES, SILENCE_PHONE
from blend_modules.data.alignments import write_alignments

logger = logging.getLogger(__name__)

CI_STATES = [
    f"{phone}_{position}" for phone in [SILENCE_PHONE, *CMU_PHONES] for position in range(3)
]


def label_inventory(training: Iterable[Iterable[State]], senones_kept: int) -> List[Dict]:
    """The model's labels: the 120 context-independent states (``PHONE_position`` for SIL and
    the 39 CMU phones, 3 states each), then the ``senones_kept`` senones with the most training
    frames (``s<senone>``). Each entry has ``name``, ``senones`` (the aligner's senone ids it
    stands for: for a CI state, its senones seen in training and not kept) and ``frames``
    (training frames). Every senone has a label: its own, or its CI state's."""
    frames, ci_state = Counter(), {}
    for states in training:
        for state in states:
            state = State(*state)
            frames[state.senone] += state.frames
            ci_state[state.senone] = ci_state_name(state.phone, state.position)
    kept = sorted(senone for senone, _ in frames.most_common(senones_kept))
    backed_off = {name: [] for name in CI_STATES}
    for senone in sorted(set(ci_state) - set(kept)):
        backed_off[ci_state[senone]].append(senone)
    inventory = [
        {"name": name, "senones": senones, "frames": sum(frames[s] for s in senones)}
        for name, senones in backed_off.items()
    ]
    inventory += [{"name": f"s{s}", "senones": [s], "frames": frames[s]} for s in kept]
    return inventory


def ci_state_name(phone: str, position: int) -> str:
    """``PHONE_position`` of a state; ``ValueError`` for a phone outside the CMU set."""
    name = f"{phone}_{position}"
    if name not in CI_STATES:
        raise ValueError(
            f"State of phone {phone!r}, position {position}: not one of the CMU phones' 3 states."
        )
    return name


class SenoneLabels:
    """The model label of an aligner senone in a phone's state: the senone's own label if the
    inventory kept it, else its context-independent state's.

    Arguments
    ---------
    labels : sequence
        (name, senone ids) per label id: :func:`label_inventory`'s entries or
        :func:`read_labels` of ``labels.txt``.
    """

    def __init__(self, labels: Sequence[Tuple[str, Sequence[int]]]):
        self.of_senone = {s: label for label, (_, senones) in enumerate(labels) for s in senones}
        self.of_name = {name: label for label, (name, _) in enumerate(labels)}
        self.count = len(labels)

    def __call__(self, senone: int, phone: str, position: int) -> int:
        label = self.of_senone.get(senone)
        return self.of_name[ci_state_name(phone, position)] if label is None else label


def write_frame_targets(
    aligned: Mapping[str, Mapping[str, Dict]], save_folder, senones_kept: int
) -> Dict:
    """Write ``<split>.ali`` (Kaldi text, pocketsphinx's frame count) and ``labels.txt`` from
    the aligned states of each split (``train`` chooses the inventory, see
    :func:`label_inventory`). Returns statistics: labels, and per split utterances, frames,
    labels seen, silence share, median frames per label."""
    save_folder = Path(save_folder)
    states_of = {
        split: {
            utt: [State(*state) for state in entry["states"]]
            for utt, entry in entries.items()
            if "states" in entry
        }
        for split, entries in aligned.items()
    }
    inventory = label_inventory(states_of["train"].values(), senones_kept)
    label_of = SenoneLabels([(entry["name"], entry["senones"]) for entry in inventory])
    stats = {"labels": len(inventory), "senones_kept": senones_kept, "splits": {}}
    for split, utterances in states_of.items():
        alignments, label_frames, silence = {}, Counter(), 0
        for utt_id, states in utterances.items():
            labels = []
            for state in states:
                labels += [label_of(state.senone, state.phone, state.position)] * state.frames
                silence += state.frames * (state.phone == SILENCE_PHONE)
            alignments[utt_id] = np.array(labels, dtype=np.int64)
            label_frames.update(labels)
        write_alignments(save_folder / f"{split}.ali", alignments)
        total = sum(label_frames.values())
        stats["splits"][split] = {
            "utterances": len(alignments),
            "frames": total,
            "labels_seen": len(label_frames),
            "silence_share": round(silence / max(total, 1), 4),
            "median_frames_per_label": float(np.median(list(label_frames.values()) or [0])),
        }
    (save_folder / "labels.txt").write_text(
        "".join(
            f"{label} {entry['name']} {' '.join(map(str, entry['senones']))}\n"
            for label, entry in enumerate(inventory)
        )
    )
    return stats


def read_labels(path) -> List[Tuple[str, List[int]]]:
    """``labels.txt`` as (name, senone ids) per label id."""
    labels = []
    for line in Path(path).read_text().splitlines():
        label, name, *senones = line.split()
        if int(label) != len(labels):
            raise ValueError(f"{path}: label {label} where {len(labels)} was expected.")
        labels.append((name, [int(s) for s in senones]))
    return labels

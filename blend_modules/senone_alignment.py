"""Senone frame targets for any corpus with English transcripts, from a real forced aligner.

pocketsphinx's bundled en-us model (16 kHz, 10 ms frames, 3-state HMMs, 5,126 senones tied
across triphones) aligns each utterance's ``words`` at the state level; each frame's label is
the senone of its state. The stage runs in two steps:

1. :func:`align_manifest` aligns every utterance of a manifest once and keeps the state sequence
   (senone, base phone, state position, frames) in a JSON-lines file, appended utterance by
   utterance, so a killed run resumes where it stopped. An utterance that fails alignment is
   retried with the widest beams, then left out and recorded with the reason; one with a word
   neither in the aligner's dictionary nor in the corpus lexicon is left out and recorded too.
2. :func:`write_frame_targets` turns the aligned states into the model's labels, a coarser
   inventory than the 5,126 senones (which a small corpus cannot train): the ``senones_kept``
   senones with the most training frames keep a label of their own, every other senone backs
   off to its context-independent state (base phone + state position). It writes Kaldi text
   alignments (what :class:`blend_modules.targets.FrameTargets` reads), ``labels.txt`` (label
   id, name, the senone ids it stands for: the decoder's map back to the aligner's senones) and
   statistics.

pocketsphinx labels frame i with the 25.6 ms window starting at sample 160 · i, so an utterance
of n samples gets ``(n - 90) // 160`` labels, 1-2 fewer than SpeechBrain's centred STFT
(``n // 160 + 1``); frame j + 1 of the STFT is centred within 3 ms of label j, so
``FrameTargets(frame_tolerance=2)`` maps them exactly (first label repeated once, last label
padded), as for Kaldi's snip-edges alignments. 8 kHz features of the downsampled audio have the
same frame count, so the same targets serve them.
"""

import csv
import json
import logging
import re
import time
from collections import Counter
from pathlib import Path
from typing import Dict, Iterable, List, Mapping, NamedTuple, Sequence, Tuple

import numpy as np

from blend_modules.alignments import write_alignments
from blend_modules.audio import read_segment
from blend_modules.data import check_manifest
from blend_modules.files import file_sha256
from blend_modules.preparation import finish_preparation, is_prepared, start_preparation

logger = logging.getLogger(__name__)

STATS_FILE = "senone_alignment.json"
TARGETS_OPTIONS_FILE = "senone_targets_options.json"
SAMPLE_RATE = 16000  # the only rate the bundled acoustic model works at
HOP = 160
WIDEST_BEAMS = {"beam": 1e-80, "pbeam": 1e-80, "wbeam": 1e-80}
SILENCE_PHONE = "SIL"
# the phones of the aligner's dictionary (CMUdict's 39) and silence, 3 HMM states each
CMU_PHONES = (
    "AA AE AH AO AW AY B CH D DH EH ER EY F G HH IH IY JH K L M N NG OW OY P R S SH T TH UH UW "
    "V W Y Z ZH"
).split()
CI_STATES = [
    f"{phone}_{position}" for phone in [SILENCE_PHONE, *CMU_PHONES] for position in range(3)
]


def aligned_frames(num_samples: int) -> int:
    """Frames pocketsphinx labels in an utterance of ``num_samples`` samples at 16 kHz."""
    return max((num_samples - 90) // HOP, 0)


class State(NamedTuple):
    """A run of frames in one HMM state."""

    senone: int
    phone: str
    position: int  # 0, 1, 2: the state's place in its phone's HMM
    frames: int


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


class SenoneAligner:
    """pocketsphinx's state-level forced alignment, with a retry at the widest beams.

    Arguments
    ---------
    lexicon : mapping
        Word -> its pronunciations (space-separated CMU phones; the first is used), for words
        the aligner's dictionary lacks (looked up in lower case, as the aligner's words are).
    """

    def __init__(self, lexicon: Mapping[str, List[str]] = None):
        from pocketsphinx import Decoder  # imported here: only this stage needs it

        # bestpath=False: pocketsphinx 5.1.1's default fails the second (state) pass on ~23%
        # of utterances of read speech (measured), an upstream bug. cmn="batch": cepstral
        # means of the utterance itself. The front end otherwise carries its estimates over
        # from the utterances aligned before (so also reinit_feat() for each one): an
        # alignment would depend on the order, and on where a resumed run restarted.
        self.decoders = [
            Decoder(samprate=SAMPLE_RATE, bestpath=False, cmn="batch", loglevel="FATAL"),
            Decoder(
                samprate=SAMPLE_RATE, bestpath=False, cmn="batch", loglevel="FATAL", **WIDEST_BEAMS
            ),
        ]
        self.lexicon = {}
        for word, pronunciations in (lexicon or {}).items():
            self.lexicon.setdefault(word.lower(), pronunciations[0])

    def unknown_words(self, words: Iterable[str]) -> List[str]:
        """Add the words the aligner lacks from the lexicon; return those neither knows."""
        unknown = []
        for word in words:
            if self.decoders[0].lookup_word(word) is not None:
                continue
            if word in self.lexicon:
                for decoder in self.decoders:
                    decoder.add_word(word, self.lexicon[word])
            else:
                unknown.append(word)
        return unknown

    def align(self, samples: np.ndarray, words: List[str]) -> Tuple[List[State], int]:
        """The state sequence of 16 kHz int16 ``samples`` reading ``words``, and how many
        attempts it took (1, or 2 with the widest beams); ``RuntimeError`` if both fail."""
        error = None
        for attempt, decoder in enumerate(self.decoders, start=1):
            try:
                return self._align(decoder, samples.tobytes(), " ".join(words)), attempt
            except RuntimeError as failure:
                error = failure
        raise RuntimeError(f"alignment failed at default and widest beams: {error}")

    @staticmethod
    def _align(decoder, pcm: bytes, text: str) -> List[State]:
        decoder.reinit_feat()  # the front end's noise and mean estimates start afresh
        decoder.set_align_text(text)
        for state_pass in (False, True):  # words first, then phones and states
            if state_pass:
                decoder.set_alignment()
            decoder.start_utt()
            decoder.process_raw(pcm, full_utt=True)
            decoder.end_utt()
        states = []
        for word in decoder.get_alignment():
            for phone in word:
                for position, state in enumerate(phone):
                    states.append(State(int(state.name), phone.name, position, state.duration))
        return states


def align_manifest(
    manifest, output_path, aligner: SenoneAligner, words_column: str = "words"
) -> Tuple[Dict, Dict[str, Dict]]:
    """Align every utterance of ``manifest`` (16 kHz audio; ``words`` transcripts) into the
    JSON-lines file ``output_path``, resuming after the utterances it already holds.

    Each line is ``{"id", "source", "states": [[senone, phone, position, frames], ...],
    "attempts"}`` or ``{"id", "source", "failed": reason}``; ``source`` (words, audio file,
    segment, file size) tells when a manifest's utterance changed and must be aligned again (the
    last line of an ID counts). A torn last line (a kill while writing) is dropped and that
    utterance aligned again. Returns counts (utterances, aligned, retried, failed: ID ->
    reason, seconds of audio, the wall time this call spent) and the manifest's entries by
    utterance ID.
    """
    segments = check_manifest(manifest, SAMPLE_RATE)
    with open(manifest, newline="") as csv_file:
        transcripts = {row["ID"]: row.get(words_column) for row in csv.DictReader(csv_file)}
    output_path, start = Path(output_path), time.perf_counter()
    done = read_aligned(output_path, drop_torn_line=True)
    with open(output_path, "a", encoding="utf-8") as out:
        for utt_id, segment in segments.items():
            text = transcripts[utt_id]
            source = [text, *segment, Path(segment.path).stat().st_size]
            if done.get(utt_id, {}).get("source") == source:
                continue
            if not text or not text.split():
                raise ValueError(f"{manifest}: utterance '{utt_id}' has an empty transcript.")
            words = text.lower().split()
            entry = {"id": utt_id, "source": source}
            unknown = aligner.unknown_words(words)
            if unknown:
                entry["failed"] = f"words in neither dictionary nor lexicon: {unknown}"
            else:
                samples = read_segment(*segment).numpy()
                pcm = np.clip(np.round(samples * 32768), -32768, 32767).astype(np.int16)
                try:
                    states, entry["attempts"] = aligner.align(pcm, words)
                    entry["states"] = [list(state) for state in states]
                except RuntimeError as error:
                    entry["failed"] = str(error)
            if "failed" in entry:
                logger.warning("%s: utterance '%s' left out: %s", manifest, utt_id, entry["failed"])
            out.write(json.dumps(entry) + "\n")
            out.flush()
            done[utt_id] = entry
    entries = {utt_id: done[utt_id] for utt_id in segments}
    counts = {
        "utterances": len(entries),
        "aligned": sum("states" in entry for entry in entries.values()),
        "retried": sum(entry.get("attempts") == 2 for entry in entries.values()),
        "failed": {utt: entry["failed"] for utt, entry in entries.items() if "failed" in entry},
        "audio_s": round(sum(s.num_samples for s in segments.values()) / SAMPLE_RATE, 1),
        "seconds": round(time.perf_counter() - start, 1),  # this call's; 0 when all cached
    }
    return counts, entries


def read_aligned(path, drop_torn_line: bool = False) -> Dict[str, Dict]:
    """The entries of an alignment JSON-lines file, by utterance ID (empty if absent). With
    ``drop_torn_line``, a last line that does not parse is cut off the file."""
    path = Path(path)
    if not path.is_file():
        return {}
    entries, lines = {}, path.read_text(encoding="utf-8").splitlines(keepends=True)
    for number, line in enumerate(lines, start=1):
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            if drop_torn_line and number == len(lines):
                path.write_text("".join(lines[:-1]), encoding="utf-8")
                break
            raise ValueError(f"{path}:{number}: not an alignment entry.") from None
        entries[entry["id"]] = entry
    return entries


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


def prepare_senone_targets(
    manifests: Mapping[str, str], save_folder, senones_kept: int, lexicon=None
) -> Dict:
    """Senone frame targets for any corpus: align each split's manifest (16 kHz audio, English
    ``words``) and write ``<split>.ali``, ``labels.txt`` and ``senone_alignment.json`` (alignment
    counts and target statistics) into ``save_folder``; usable as a recipe's ``prepare``.

    Alignments are cached in ``save_folder/aligned/<split>.jsonl`` (resumable; an utterance is
    aligned again only if its words or audio changed), so another ``senones_kept`` only rewrites
    the targets. Skipped when done with the same manifests (by content) and options.

    Arguments
    ---------
    manifests : mapping
        Split name -> manifest; ``train`` chooses the label inventory.
    save_folder : path
        Where targets and the cache go.
    senones_kept : int
        Senones with a label of their own (the others back off to their CI state).
    lexicon : path
        A CMU-phone lexicon for words the aligner's dictionary lacks (optional).
    """
    save_folder = Path(save_folder)
    options = {
        "manifests": {split: file_sha256(manifest) for split, manifest in manifests.items()},
        "senones_kept": senones_kept,
        "lexicon": file_sha256(lexicon) if lexicon else None,
    }
    if is_prepared(save_folder, options, TARGETS_OPTIONS_FILE):
        logger.info("Senone targets already in %s, skipping.", save_folder)
        return json.loads((save_folder / STATS_FILE).read_text())
    start_preparation(save_folder, TARGETS_OPTIONS_FILE)
    cache = save_folder / "aligned"
    cache.mkdir(exist_ok=True)
    aligner = SenoneAligner(read_lexicon(lexicon) if lexicon else None)
    aligned, counts = {}, {}
    for split, manifest in manifests.items():
        counts[split], aligned[split] = align_manifest(manifest, cache / f"{split}.jsonl", aligner)
    stats = {"alignment": counts, **write_frame_targets(aligned, save_folder, senones_kept)}
    (save_folder / STATS_FILE).write_text(json.dumps(stats, indent=2))
    logger.info("Senone targets in %s: %s", save_folder, json.dumps(stats))
    finish_preparation(save_folder, options, TARGETS_OPTIONS_FILE)
    return stats

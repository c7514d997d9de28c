"""pocketsphinx's en-us model as a forced aligner: each utterance's ``words`` aligned at the
state level (senone, base phone, state position, frames), resumably, with failures retried at
the widest beams and otherwise left out and recorded (:mod:`blend_modules.alignment.senone_targets`
runs it over a corpus).

pocketsphinx labels frame i with the 25.6 ms window starting at sample 160 · i, so an utterance
of n samples gets ``(n - 90) // 160`` labels (:func:`aligned_frames`), 1-2 fewer than
SpeechBrain's centred STFT (``n // 160 + 1``)."""

import csv
import json
import logging
import time
from pathlib import Path
from typing import Dict, Iterable, List, Mapping, NamedTuple, Tuple

import numpy as np

from blend_modules.alignment.lexicon import manifest_spellings, normalize_words
from blend_modules.data.audio import read_segment
from blend_modules.data.manifests import check_manifest

logger = logging.getLogger(__name__)

SAMPLE_RATE = 16000  # the only rate the bundled acoustic model works at


HOP = 160


WIDEST_BEAMS = {"beam": 1e-80, "pbeam": 1e-80, "wbeam": 1e-80}


def aligned_frames(num_samples: int) -> int:
    """Frames pocketsphinx labels in an utterance of ``num_samples`` samples at 16 kHz."""
    return max((num_samples - 90) // HOP, 0)


class State(NamedTuple):
    """A run of frames in one HMM state."""

    senone: int
    phone: str
    position: int  # 0, 1, 2: the state's place in its phone's HMM
    frames: int


class SenoneAligner:
    """pocketsphinx's state-level forced alignment, with a retry at the widest beams.

    Arguments
    ---------
    lexicon : mapping
        Word (under the transcript rule, :mod:`blend_modules.alignment.lexicon`) -> its
        pronunciations (space-separated CMU phones), for words the aligner's dictionary lacks.
        All of them are added, as alternatives (``word(2)``, ...), so the aligner chooses among
        them as among its own dictionary's, and as the decoding graph does.
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
        self.lexicon = dict(lexicon or {})

    def unknown_words(self, words: Iterable[str]) -> List[str]:
        """Add the words the aligner lacks from the lexicon (every pronunciation); return those
        neither knows."""
        unknown = []
        for word in words:
            if self.decoders[0].lookup_word(word) is not None:
                continue
            if word in self.lexicon:
                for decoder in self.decoders:
                    for number, phones in enumerate(self.lexicon[word], start=1):
                        # pocketsphinx links "word(2)" ... to "word" as its alternatives
                        decoder.add_word(word if number == 1 else f"{word}({number})", phones)
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
    """Align every utterance of ``manifest`` (16 kHz audio; ``words`` transcripts, read under
    the transcript rule of :mod:`blend_modules.alignment.lexicon`) into the JSON-lines file
    ``output_path``, resuming after the utterances it already holds. An utterance with a word
    neither the aligner's dictionary nor the lexicon knows (quoted as the manifest spells it),
    or with no word at all (silence only), is left out and recorded, as is one the aligner
    fails on.

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
            words = normalize_words((text or "").split())
            entry = {"id": utt_id, "source": source}
            unknown = aligner.unknown_words(words)
            if not words:
                entry["failed"] = "no words to align (silence only)"
            elif unknown:
                spellings = manifest_spellings(text.split())
                entry["failed"] = (
                    f"words in neither dictionary nor lexicon: {[spellings[w] for w in unknown]}"
                )
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

"""Data preparation for the embedded connected-digits corpus built from FSDD.

The Free Spoken Digit Dataset (``fsdd/``, CC BY-SA 4.0) holds isolated digits. This script
joins them into TIDIGITS-like utterances of 1-7 digits from one speaker, and writes:

- ``{train,valid,test}.csv``: SpeechBrain manifests (ID, duration, wav, spk_id, words), wav paths
  relative to the manifest folder as ``$data_root/...``;
- ``{train,valid,test}.ali``: frame targets in Kaldi's text alignment format
  (``utt-id l1 l2 ... lT``, what ``ali-to-pdf ... ark,t:-`` prints), one label per 10 ms frame;
- ``labels.txt``: the label inventory, ``<name> <id>`` per line: ``sil`` plus 3 states per digit.

Each clip is trimmed by an energy endpoint detector and peak-normalised (FSDD speakers differ by
up to 20 dB), then joined with random pauses and leading/trailing silence over a low-level noise
floor. Optional additive noise at a random SNR (white or pink) covers all splits. Everything is
drawn from one seeded generator, so the output is deterministic; a second call with the same
options returns at once.

Authors: blend contributors
"""

import csv
import logging
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

import kaldifst
import numpy as np
import soundfile as sf

from blend_modules.data.alignments import read_alignments, write_alignments
from blend_modules.data.frames import num_frames
from blend_modules.data.prepare_once import (
    finish_preparation,
    folder_fingerprint,
    is_prepared,
    start_preparation,
)
from blend_modules.hybrid.hmm_graphs import Pronunciation, self_loop_probabilities, word_loop_graph

logger = logging.getLogger(__name__)

DIGIT_WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
STATES_PER_DIGIT = 3
SAMPLE_RATE = 8000


def label_names() -> List[str]:
    """Return the label inventory: ``sil`` then ``<digit>_<state>``; the list index is the id."""
    return ["sil"] + [
        f"{word}_{state}" for word in DIGIT_WORDS for state in range(1, STATES_PER_DIGIT + 1)
    ]


def digit_graph(
    alignments: str = None, self_loop_scale: float = 1.0
) -> Tuple[kaldifst.StdVectorFst, List[str]]:
    """The decoding graph of connected digits over :func:`label_names`: any number of digits,
    each its 3 states left to right, with optional silence before, between and after them;
    with the training ``alignments``, HMM transition probabilities estimated from them (their
    costs times ``self_loop_scale``)."""
    label_of = {name: label for label, name in enumerate(label_names())}
    pronunciations = [
        Pronunciation(
            word, [[label_of[f"{word}_{state}"]] for state in range(1, STATES_PER_DIGIT + 1)]
        )
        for word in DIGIT_WORDS
    ]
    stay = None
    if alignments is not None:
        stay = self_loop_probabilities(read_alignments(alignments, len(label_of)), len(label_of))
    graph = word_loop_graph(pronunciations, [[label_of["sil"]]], DIGIT_WORDS, stay, self_loop_scale)
    return graph, DIGIT_WORDS


def prepare_fsdd(
    data_folder: str,
    save_folder: str,
    speakers: Dict[str, Sequence[str]],
    utterances: Dict[str, int],
    digits_per_utterance: Tuple[int, int] = (1, 7),
    pause_seconds: Tuple[float, float] = (0.05, 0.4),
    edge_silence_seconds: Tuple[float, float] = (0.1, 0.5),
    noise_floor_dbfs: float = -60.0,
    snr_db: Tuple[float, float] = None,
    noise_colour: str = "pink",
    hop_length_ms: float = 10.0,
    seed: int = 1234,
) -> None:
    """Build the connected-digits corpus from FSDD recordings.

    Arguments
    ---------
    data_folder : str
        The FSDD copy: holds ``recordings/{digit}_{speaker}_{take}.wav``.
    save_folder : str
        Where wavs, manifests, alignments and ``labels.txt`` are written.
    speakers : dict
        Split name -> FSDD speakers of that split (speaker-independent splits).
    utterances : dict
        Split name -> number of utterances to make.
    digits_per_utterance : tuple
        Smallest and largest number of digits in an utterance (inclusive).
    pause_seconds, edge_silence_seconds : tuple
        Ranges of the pause between digits and of the leading/trailing silence.
    noise_floor_dbfs : float
        RMS level of the white noise floor under the whole utterance (pauses are never zeros).
    snr_db : tuple or None
        If given, noise of ``noise_colour`` is added to every utterance at an SNR drawn from
        this range (relative to the utterance's speech power).
    noise_colour : str
        ``white`` or ``pink``.
    hop_length_ms : float
        Frame shift of the features the alignments must match.
    seed : int
        Seed of the single random generator behind every choice.
    """
    options = {
        "data": folder_fingerprint(data_folder),  # not its path: the corpus may move
        "speakers": {split: list(names) for split, names in speakers.items()},
        "utterances": dict(utterances),
        "digits_per_utterance": list(digits_per_utterance),
        "pause_seconds": list(pause_seconds),
        "edge_silence_seconds": list(edge_silence_seconds),
        "noise_floor_dbfs": noise_floor_dbfs,
        "snr_db": list(snr_db) if snr_db is not None else None,
        "noise_colour": noise_colour,
        "hop_length_ms": hop_length_ms,
        "seed": seed,
    }
    if is_prepared(save_folder, options):
        logger.info("FSDD corpus already prepared in %s, skipping.", save_folder)
        return
    if set(speakers) != set(utterances):
        raise ValueError(
            f"'speakers' splits {sorted(speakers)} and 'utterances' splits "
            f"{sorted(utterances)} differ."
        )
    if noise_colour not in ("white", "pink"):
        raise ValueError(f"noise_colour must be 'white' or 'pink', got {noise_colour!r}.")

    save_folder = start_preparation(save_folder)
    (save_folder / "wav").mkdir(exist_ok=True)
    hop_samples = int(round(SAMPLE_RATE * hop_length_ms / 1000))
    clips = load_clips(Path(data_folder) / "recordings", [s for v in speakers.values() for s in v])
    rng = np.random.default_rng(seed)

    for split in sorted(speakers):
        rows, alignments = [], {}
        for index in range(utterances[split]):
            speaker = speakers[split][rng.integers(len(speakers[split]))]
            n_digits = rng.integers(digits_per_utterance[0], digits_per_utterance[1] + 1)
            digits = rng.integers(0, 10, size=n_digits).tolist()
            utt_id = f"{split}_{speaker}_{index:05d}_{''.join(map(str, digits))}"
            audio, frame_labels = join_digits(
                [clips[speaker][d][rng.integers(len(clips[speaker][d]))] for d in digits],
                digits,
                rng,
                pause_seconds,
                edge_silence_seconds,
                noise_floor_dbfs,
                snr_db,
                noise_colour,
                hop_samples,
            )
            sf.write(save_folder / "wav" / f"{utt_id}.wav", audio, SAMPLE_RATE, subtype="PCM_16")
            alignments[utt_id] = frame_labels
            rows.append(
                {
                    "ID": utt_id,
                    "duration": f"{len(audio) / SAMPLE_RATE:.4f}",
                    "wav": f"$data_root/wav/{utt_id}.wav",
                    "spk_id": speaker,
                    "words": " ".join(DIGIT_WORDS[d] for d in digits),
                }
            )
        with open(save_folder / f"{split}.csv", "w", newline="") as csv_file:
            writer = csv.DictWriter(csv_file, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
        write_alignments(save_folder / f"{split}.ali", alignments)
        n_frames = sum(len(labels) for labels in alignments.values())
        logger.info("FSDD %s: %d utterances, %d frames.", split, len(rows), n_frames)

    (save_folder / "labels.txt").write_text(
        "".join(f"{name} {i}\n" for i, name in enumerate(label_names()))
    )
    finish_preparation(save_folder, options)


def load_clips(recordings: Path, speakers: Sequence[str]) -> Dict[str, List[List[np.ndarray]]]:
    """Read, endpoint-trim and peak-normalise every clip: ``clips[speaker][digit] -> [audio]``."""
    clips = {speaker: [[] for _ in DIGIT_WORDS] for speaker in speakers}
    for speaker in speakers:
        paths = sorted(recordings.glob(f"*_{speaker}_*.wav"))
        if not paths:
            raise FileNotFoundError(f"No FSDD recordings of speaker '{speaker}' in {recordings}.")
        for path in paths:
            audio, rate = sf.read(path, dtype="float32")
            if rate != SAMPLE_RATE or audio.ndim != 1:
                raise ValueError(
                    f"{path}: expected 8 kHz mono, got {rate} Hz, shape {audio.shape}."
                )
            speech = trim_to_speech(audio)
            clips[speaker][int(path.name.split("_")[0])].append(
                0.5 * speech / max(np.abs(speech).max(), 1e-6)
            )
    return clips


def trim_to_speech(audio: np.ndarray, frame: int = 80, threshold_db: float = 35.0) -> np.ndarray:
    """Energy endpoint detector: keep the frames whose energy is within ``threshold_db`` of
    the loudest frame, from the first to the last such frame, plus one frame either side."""
    n_frames = max(1, len(audio) // frame)
    energy = np.array(
        [np.mean(audio[i * frame : (i + 1) * frame] ** 2) + 1e-10 for i in range(n_frames)]
    )
    energy_db = 10 * np.log10(energy)
    active = np.flatnonzero(energy_db > energy_db.max() - threshold_db)
    start = max(0, (active[0] - 1) * frame)
    stop = min(len(audio), (active[-1] + 2) * frame)
    return audio[start:stop]


def join_digits(
    digit_clips: List[np.ndarray],
    digits: List[int],
    rng: np.random.Generator,
    pause_seconds: Tuple[float, float],
    edge_silence_seconds: Tuple[float, float],
    noise_floor_dbfs: float,
    snr_db: Tuple[float, float],
    noise_colour: str,
    hop_samples: int,
) -> Tuple[np.ndarray, np.ndarray]:
    """Join clips with pauses over a noise floor; return the audio and its frame labels."""

    def gap(bounds: Tuple[float, float]) -> int:
        return int(rng.uniform(*bounds) * SAMPLE_RATE)

    pieces, spans, position = [], [], gap(edge_silence_seconds)
    pieces.append(np.zeros(position, dtype=np.float32))
    for i, clip in enumerate(digit_clips):
        spans.append((position, position + len(clip)))
        position += len(clip)
        silence = gap(edge_silence_seconds if i == len(digit_clips) - 1 else pause_seconds)
        pieces += [clip, np.zeros(silence, dtype=np.float32)]
        position += silence
    audio = np.concatenate(pieces)
    speech = np.concatenate(digit_clips)

    audio += 10 ** (noise_floor_dbfs / 20) * rng.standard_normal(len(audio)).astype(np.float32)
    if snr_db is not None:
        noise = coloured_noise(len(audio), noise_colour, rng)
        speech_power = np.mean(speech**2)
        snr = rng.uniform(*snr_db)
        audio += noise * np.sqrt(speech_power / (np.mean(noise**2) * 10 ** (snr / 10)))
    peak = np.abs(audio).max()
    if peak > 0.99:
        audio *= 0.99 / peak

    # A frame's label is the one at its centre sample (SpeechBrain's STFT uses center=True).
    centres = np.arange(num_frames(len(audio), hop_samples)) * hop_samples
    labels = np.zeros(len(centres), dtype=np.int32)
    for digit, (start, stop) in zip(digits, spans):
        inside = (centres >= start) & (centres < stop)
        state = (STATES_PER_DIGIT * (centres[inside] - start)) // (stop - start)
        labels[inside] = 1 + STATES_PER_DIGIT * digit + state
    return audio.astype(np.float32), labels


def coloured_noise(length: int, colour: str, rng: np.random.Generator) -> np.ndarray:
    """White or pink (1/f power) Gaussian noise of unit-ish scale."""
    white = rng.standard_normal(length)
    if colour == "white":
        return white.astype(np.float32)
    spectrum = np.fft.rfft(white)
    frequencies = np.arange(len(spectrum))
    spectrum[1:] /= np.sqrt(frequencies[1:])
    spectrum[0] = 0
    return np.fft.irfft(spectrum, n=length).astype(np.float32)

"""Switchboard-1 (LDC97S62) and eval2000 (LDC2002S09 + LDC2002T43) -> SpeechBrain manifests.

Writes to ``save_folder``: ``train.csv`` and ``dev.csv`` (Switchboard segments from the ISIP
ms98 transcripts), ``eval2000_swbd.csv`` / ``eval2000_callhome.csv`` (the Hub5'00 segments of
``hub5e_00.pem`` with their ``.stm`` references) and ``eval2000.glm`` (the references' GLM).
Each row is a segment of one channel of a conversation, read on the fly:
``ID, duration, wav, start, stop, channel, spk_id, words``.
Utterance IDs are Kaldi s5c's (``sw02001-A_000098-001156``: side, start and end in
centiseconds), so alignments made by a Kaldi recipe line up with them; the eval2000 segments
(IDs, times widened by 0.1 s, text) are exactly those of s5c's ``eval2000_data_prep.sh``, so
hypotheses line up with Kaldi's ``data/eval2000`` and its scoring.

- Text is normalised as in s5c (see ``swbd_text``); segments left without words are dropped.
- ``dev.csv`` holds out whole conversations, the first ones in ID order, until it has
  ``dev_utterances`` segments (s5c's ``train_dev`` is the first 4000 segments).
- ``train.csv`` keeps at most ``max_duplicates`` segments with the same transcript (s5c's
  ``train_nodup``: 300 "uh-huh"s are plenty).
- Shorten-compressed SPHERE files are decoded once by ``sph2pipe`` into
  ``save_folder/audio`` (see ``blend_modules.data.audio``); PCM and µ-law ones are read in place.
"""

import csv
import logging
import os
import re
import shutil
from collections import Counter, defaultdict
from pathlib import Path
from typing import Dict, List, Tuple

import soundfile as sf
from swbd_text import normalize_transcript, reference_words

from blend_modules.data.audio import readable_audio
from blend_modules.data.prepare_once import finish_preparation, is_prepared, start_preparation

logger = logging.getLogger(__name__)

GLM_FILE = "eval2000.glm"  # the reference's GLM, copied for scoring
COLUMNS = ["ID", "duration", "wav", "start", "stop", "channel", "spk_id", "words"]
CHANNELS = {"A": 0, "B": 1}
SWBD_AUDIO = re.compile(r"^sw0(\d{4})\.sph$", re.IGNORECASE)
MS98_FILE = re.compile(r"^sw(\d{4})([AB])-ms98-a-trans\.text$")
TIME_SLACK_S = 0.01  # transcripts round times; a segment may end this far past the audio
EVAL2000_EXTEND_S = 0.1  # eval2000_data_prep.sh: local/extend_segments.pl 0.1


def centiseconds(seconds: float) -> int:
    """A time rounded to centiseconds, as Kaldi's segment IDs and ``segments`` files hold it."""
    return int(100 * seconds + 0.5)


def utterance_id(recording: str, side: str, start: float, stop: float) -> str:
    """Kaldi s5c's segment ID: ``<recording>-<side>_<start cs>-<end cs>``."""
    return f"{recording}-{side}_{centiseconds(start):06d}-{centiseconds(stop):06d}"


def prepare_switchboard(
    data_folder: str,
    transcripts_folder: str,
    eval2000_folder: str,
    eval2000_reference_folder: str,
    save_folder: str,
    keep_noise: bool = True,
    dev_utterances: int = 4000,
    max_duplicates: int = 300,
    sph2pipe: str = "sph2pipe",
) -> None:
    """Write the train, dev and eval2000 manifests (see the module docstring).

    Arguments
    ---------
    data_folder : str
        LDC97S62 root; its ``sw0NNNN.sph`` files are found anywhere below
        (``swb1_d1..d4/data/`` as distributed).
    transcripts_folder : str
        ``swb_ms98_transcriptions`` (``NN/NNNN/swNNNN{A,B}-ms98-a-trans.text``).
    eval2000_folder : str
        LDC2002S09 root: ``english/*.sph`` and ``hub5e_00.pem`` found below it.
    eval2000_reference_folder : str
        LDC2002T43 root: one ``.stm`` found below it.
    save_folder : str
        Where manifests (and decoded audio) go.
    keep_noise : bool
        Keep ``[noise]``, ``[laughter]``, ``[vocalized-noise]`` as words (Kaldi's choice, for
        frame targets from its alignments); False drops them (and segments of only noise).
    dev_utterances, max_duplicates : int
        Size of the held-out dev set; cap on segments sharing one transcript in train.
    sph2pipe : str
        The decoder for shorten-compressed SPHERE files.
    """
    options = {
        "data_folder": os.path.abspath(data_folder),
        "transcripts_folder": os.path.abspath(transcripts_folder),
        "eval2000_folder": os.path.abspath(eval2000_folder),
        "eval2000_reference_folder": os.path.abspath(eval2000_reference_folder),
        "keep_noise": keep_noise,
        "dev_utterances": dev_utterances,
        "max_duplicates": max_duplicates,
    }
    if is_prepared(save_folder, options):
        logger.info("Switchboard already prepared in %s, skipping.", save_folder)
        return
    for name in ("data_folder", "transcripts_folder", "eval2000_folder"):
        if not Path(options[name]).is_dir():
            raise FileNotFoundError(f"{name} {options[name]} is not a folder.")
    save_folder = start_preparation(save_folder)
    audio_cache = save_folder / "audio"

    audio = find_swbd_audio(Path(data_folder))
    rows = switchboard_rows(Path(transcripts_folder), audio, audio_cache, keep_noise, sph2pipe)
    train, dev = split_dev(rows, dev_utterances)
    train = cap_duplicates(train, max_duplicates)
    write_manifest(save_folder / "train.csv", train)
    write_manifest(save_folder / "dev.csv", dev)
    for subset, subset_rows in eval2000_rows(
        Path(eval2000_folder), Path(eval2000_reference_folder), audio_cache, sph2pipe
    ).items():
        write_manifest(save_folder / f"eval2000_{subset}.csv", subset_rows)
    finish_preparation(save_folder, options)


def find_swbd_audio(data_folder: Path) -> Dict[str, Path]:
    """Conversation number (``2001``) -> its ``sw02001.sph``, searched below ``data_folder``."""
    audio = {}
    for path in sorted(data_folder.rglob("*")):
        match = SWBD_AUDIO.match(path.name)
        if match:
            audio[match.group(1)] = path
    if not audio:
        raise FileNotFoundError(f"No Switchboard audio (sw0NNNN.sph) below {data_folder}.")
    return audio


def audio_info(path: Path, audio_cache: Path, sph2pipe: str) -> Tuple[Path, float, int]:
    """A conversation's readable audio file, its duration in seconds and channel count."""
    readable = readable_audio(path, audio_cache, sph2pipe)
    info = sf.info(str(readable))
    return readable, info.frames / info.samplerate, info.channels


def switchboard_rows(
    transcripts_folder: Path,
    audio: Dict[str, Path],
    audio_cache: Path,
    keep_noise: bool,
    sph2pipe: str,
) -> List[Dict]:
    """Manifest rows of every transcribed segment, sorted by ID. Raises ``ValueError`` naming
    the file for a conversation without both transcripts (or the reverse), an unparsable
    line, or a segment outside its audio."""
    transcripts = defaultdict(dict)
    for path in sorted(transcripts_folder.rglob("*-ms98-a-trans.text")):
        match = MS98_FILE.match(path.name)
        if match:
            transcripts[match.group(1)][match.group(2)] = path
    without_audio = sorted(set(transcripts) - set(audio))
    if without_audio:
        side = next(iter(transcripts[without_audio[0]].values()))
        raise ValueError(
            f"{side}: {len(without_audio)} transcribed conversation(s) have no audio below "
            f"the data folder, e.g. sw0{without_audio[0]}.sph."
        )
    rows = []
    for conversation, sph_path in sorted(audio.items()):
        sides = transcripts.get(conversation, {})
        if set(sides) != set(CHANNELS):
            raise ValueError(
                f"{sph_path}: no ms98 transcript for side(s) "
                f"{sorted(set(CHANNELS) - set(sides))} in {transcripts_folder} "
                f"(expected sw{conversation}A/B-ms98-a-trans.text)."
            )
        readable, duration, channels = audio_info(sph_path, audio_cache, sph2pipe)
        if channels != 2:
            raise ValueError(f"{sph_path}: {channels} channel(s), expected 2 (sides A and B).")
        for side, transcript in sorted(sides.items()):
            rows += side_rows(
                transcript, f"sw0{conversation}", side, readable, duration, keep_noise
            )
    return sorted(rows, key=lambda row: row["ID"])


def side_rows(
    transcript: Path, recording: str, side: str, wav: Path, duration: float, keep_noise: bool
) -> List[Dict]:
    """The rows of one ms98 transcript file (one conversation side)."""
    rows = []
    with open(transcript, encoding="latin-1") as lines:
        for number, line in enumerate(lines, start=1):
            fields = line.split()
            if not fields:
                continue
            where = f"{transcript}:{number}"
            try:
                start, stop = float(fields[1]), float(fields[2])
            except (IndexError, ValueError) as error:
                raise ValueError(
                    f"{where}: expected 'segment-id start end words...', got {line.strip()!r}."
                ) from error
            if not 0 <= start < stop:
                raise ValueError(f"{where}: segment times {start} - {stop} are not increasing.")
            if stop > duration + TIME_SLACK_S:
                raise ValueError(
                    f"{where}: segment ends at {stop} s, after the end of {wav} ({duration:.3f} s)."
                )
            words = normalize_transcript(fields[3:], keep_noise)
            if words:
                rows.append(segment_row(recording, side, wav, start, stop, duration, words))
    return rows


def segment_row(
    recording: str,
    side: str,
    wav: Path,
    start: float,
    stop: float,
    audio_seconds: float,
    words: List[str],
    utt_id: str = None,
) -> Dict:
    """One manifest row; times rounded to centiseconds as in Kaldi's ``segments`` (so that
    frame counts match those of Kaldi's alignments), the end clipped to the audio's; the ID is
    Kaldi's training-segment ID (:func:`utterance_id`) unless given."""
    start_s = centiseconds(start) / 100
    stop_s = min(centiseconds(stop) / 100, audio_seconds)
    return {
        "ID": utt_id or utterance_id(recording, side, start, stop),
        "duration": f"{stop_s - start_s:.6f}",
        "wav": str(wav),
        "start": f"{start_s:.6f}",
        "stop": f"{stop_s:.6f}",
        "channel": CHANNELS[side],
        "spk_id": f"{recording}-{side}",
        "words": " ".join(words),
    }


def split_dev(rows: List[Dict], dev_utterances: int) -> Tuple[List[Dict], List[Dict]]:
    """Hold out the first whole conversations (ID order) until ``dev_utterances`` segments."""
    dev_conversations = set()
    count_by_conversation = Counter(row["spk_id"].split("-")[0] for row in rows)
    total = 0
    for conversation in sorted(count_by_conversation):
        if total >= dev_utterances:
            break
        dev_conversations.add(conversation)
        total += count_by_conversation[conversation]
    if len(dev_conversations) == len(count_by_conversation):
        raise ValueError(
            f"dev_utterances {dev_utterances} leaves no conversation for training "
            f"({len(rows)} segments in {len(count_by_conversation)} conversations)."
        )
    in_dev = [row["spk_id"].split("-")[0] in dev_conversations for row in rows]
    train = [row for row, dev in zip(rows, in_dev) if not dev]
    dev = [row for row, dev in zip(rows, in_dev) if dev]
    logger.info(
        "dev: %d segments of %d conversations; train: %d.",
        len(dev),
        len(dev_conversations),
        len(train),
    )
    return train, dev


def cap_duplicates(rows: List[Dict], max_duplicates: int) -> List[Dict]:
    """Keep the first ``max_duplicates`` segments of each transcript (Kaldi's nodup)."""
    seen, kept = Counter(), []
    for row in rows:
        seen[row["words"]] += 1
        if seen[row["words"]] <= max_duplicates:
            kept.append(row)
    logger.info("nodup: %d of %d segments kept.", len(kept), len(rows))
    return kept


def find_one(folder: Path, pattern: str) -> Path:
    """The single file matching ``pattern`` below ``folder``."""
    found = sorted(folder.rglob(pattern))
    if len(found) != 1:
        raise FileNotFoundError(f"Expected one {pattern} below {folder}, found {len(found)}.")
    return found[0]


def eval2000_rows(
    eval2000_folder: Path, reference_folder: Path, audio_cache: Path, sph2pipe: str
) -> Dict[str, List[Dict]]:
    """Rows of the Hub5'00 segments as Kaldi's ``eval2000_data_prep.sh`` makes them: IDs and
    times from the ``.pem`` (:func:`kaldi_eval2000_id`, then :func:`extend_segments` by 0.1 s),
    words from the ``.stm`` line of the same ID (Kaldi stops if the two files' segments differ:
    so does this); split into ``swbd`` (``sw_*`` recordings) and ``callhome`` (``en_*``).
    Segments marked ``IGNORE_TIME_SEGMENT_IN_SCORING`` (Kaldi leaves them out of ``text``), or
    without a scored reference word, are left out and counted."""
    pem = find_one(eval2000_folder, "*.pem")
    stm = find_one(reference_folder, "*.stm")
    shutil.copy(find_one(reference_folder, "*.glm"), audio_cache.parent / GLM_FILE)
    segments = extend_segments(read_segment_lines(pem), EVAL2000_EXTEND_S)
    references = {utt_id: words for utt_id, (_, _, _, _, words) in read_segment_lines(stm).items()}
    if set(segments) != set(references):
        only = sorted(set(segments) ^ set(references))[0]
        raise ValueError(
            f"The segments of {pem} and {stm} differ (e.g. {only} is in only one of them), "
            "as Kaldi's eval2000_data_prep.sh would stop."
        )
    sph_files = {path.stem: path for path in eval2000_folder.rglob("*.sph")}
    subsets, audio, ignored, empty = {"swbd": [], "callhome": []}, {}, 0, 0
    for utt_id, (recording, side, start, stop) in sorted(segments.items()):
        if recording not in audio:
            if recording not in sph_files:
                raise FileNotFoundError(
                    f"{pem}: no audio {recording}.sph below {eval2000_folder} (segment {utt_id})."
                )
            audio[recording] = audio_info(sph_files[recording], audio_cache, sph2pipe)
        wav, duration, _ = audio[recording]
        if stop > duration + EVAL2000_EXTEND_S + TIME_SLACK_S:
            raise ValueError(
                f"{pem}: segment {utt_id} ends at {stop} s, after the end of {wav} "
                f"({duration:.3f} s)."
            )
        stm_words = references[utt_id]
        if stm_words and stm_words[0].startswith("<"):  # the stm's <O,en,F,en-F> tag
            stm_words = stm_words[1:]
        if any(word.upper().startswith("IGNORE_TIME_SEGMENT_") for word in stm_words):
            ignored += 1
            continue
        words = reference_words(stm_words)
        if not words:
            empty += 1
            continue
        subset = "swbd" if recording.startswith("sw") else "callhome"
        row = segment_row(recording, side, wav, start, stop, duration, words, utt_id)
        subsets[subset].append(row)
    logger.info(
        "eval2000: %d swbd and %d callhome segments; left out: %d IGNORE_TIME_SEGMENT_IN_SCORING,"
        " %d without a scored reference word.",
        len(subsets["swbd"]),
        len(subsets["callhome"]),
        ignored,
        empty,
    )
    for subset, rows in subsets.items():
        if not rows:
            raise ValueError(f"{pem}: no {subset} segment has a reference in {stm}.")
    return subsets


def kaldi_eval2000_id(recording: str, side: str, start: float, stop: float) -> str:
    """The segment ID Kaldi's ``eval2000_data_prep.sh`` writes with awk
    ``sprintf("%s_%06d-%06d", $1"-"$2, $4*100, $5*100)``: the times (parsed as awk parses them,
    to doubles) in centiseconds *truncated* as awk's ``%d`` truncates the double product
    (``1.15`` -> ``000114``)."""
    return f"{recording}-{side}_{int(start * 100):06d}-{int(stop * 100):06d}"


def read_segment_lines(path: Path) -> Dict[str, Tuple[str, str, float, float, List[str]]]:
    """Kaldi eval2000 ID -> (recording, side, start, end, rest of the line) of each line of a
    ``.pem`` or ``.stm`` file (``recording side speaker start end ...``; ``;;`` comments)."""
    segments = {}
    with open(path, encoding="latin-1") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip() or line.startswith(";;"):
                continue
            fields = segment_fields(line, path, number)
            segments[kaldi_eval2000_id(*fields[:4])] = fields
    return segments


def extend_segments(
    segments: Dict[str, Tuple], extend: float
) -> Dict[str, Tuple[str, str, float, float]]:
    """Kaldi's ``local/extend_segments.pl``: widen each segment of a recording side by
    ``extend`` seconds at both ends, but never into a neighbour (two adjacent segments share
    the gap between them at most half each; overlapping ones stay as they are) nor before 0;
    times printed with 2 decimals."""
    by_side = defaultdict(list)
    for utt_id, (recording, side, start, stop, *_) in segments.items():
        by_side[recording, side].append([start, stop, utt_id])
    extended = {}
    for (recording, side), spans in by_side.items():
        spans.sort(key=lambda span: span[0])  # stable, like Perl's sort on start times
        spans[0][0] = max(spans[0][0] - extend, 0.0)
        spans[-1][1] += extend
        for earlier, later in zip(spans, spans[1:]):
            if earlier[1] <= later[0]:
                widen = min(extend, 0.5 * (later[0] - earlier[1]))
                earlier[1] += widen
                later[0] -= widen
        for start, stop, utt_id in spans:
            extended[utt_id] = (recording, side, float(f"{start:.2f}"), float(f"{stop:.2f}"))
    return extended


def segment_fields(line: str, path: Path, number: int) -> Tuple[str, str, float, float, List[str]]:
    """``recording side speaker start end rest...`` (a ``.pem`` or ``.stm`` line) ->
    recording, side, start, end and the rest; ``ValueError`` naming the file and line if not."""
    fields = line.split()
    try:
        recording, side, start, stop = fields[0], fields[1], float(fields[3]), float(fields[4])
    except (IndexError, ValueError) as error:
        raise ValueError(
            f"{path}:{number}: expected 'recording side speaker start end ...', got "
            f"{line.strip()!r}."
        ) from error
    if side not in CHANNELS:
        raise ValueError(f"{path}:{number}: side {side!r} is not A or B.")
    return recording, side, start, stop, fields[5:]


def write_manifest(path: Path, rows: List[Dict]) -> None:
    """Write a manifest CSV (to a temporary name first, so a killed run leaves none)."""
    partial = path.with_suffix(".partial")
    with open(partial, "w", newline="") as csv_file:
        writer = csv.DictWriter(csv_file, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    os.replace(partial, path)
    logger.info("Wrote %s (%d segments).", path, len(rows))

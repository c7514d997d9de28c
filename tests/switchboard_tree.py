"""A miniature Switchboard written in the real layout: LDC97S62 SPHERE conversations (2-channel
PCM and µ-law), ISIP ms98 transcripts, eval2000 audio + ``.pem``, and an LDC2002T43 ``.stm``
and ``.glm``. File names, header fields and line formats follow the LDC/ISIP originals."""

import io
from pathlib import Path
from typing import Dict, List, Tuple

import numpy as np
import soundfile as sf

SAMPLE_RATE = 8000
CONVERSATION_SECONDS = 12.0

# Side A of sw02001, written verbatim: every normalisation rule appears once.
SW2001A = [
    ("0.000000", "0.977625", "[silence]"),
    ("0.977625", "2.500000", "uh-huh [laughter-yes] i_b_m's <b_aside> [noise] <e_aside>"),
    ("2.500000", "4.100000", "ab[solute]- -[an]y [bocket/bucket] them_1 {yuppiedom}"),
    ("4.100000", "5.000000", "[silence]"),
    ("5.000000", "6.400000", "[vocalized-noise]"),
    ("6.400000", "8.000000", "uh-huh"),
    ("8.000000", "9.600000", "uh-huh"),
    ("9.600000", "11.990000", "i think so [laughter]"),
]
SW2001A_EXPECTED = {  # Kaldi-style ID -> training words with noise tokens kept
    "sw02001-A_000098-000250": "uh-huh yes i b m's [noise]",
    "sw02001-A_000250-000410": "ab- -y bocket them yuppiedom",
    "sw02001-A_000500-000640": "[vocalized-noise]",
    "sw02001-A_000640-000800": "uh-huh",
    "sw02001-A_000800-000960": "uh-huh",
    "sw02001-A_000960-001199": "i think so [laughter]",
}
WORDS = (  # every letter, the apostrophe and the hyphen occur in training text, as in the corpus
    "yeah right i know we have been to the city and it was really nice uh-huh i'm gonna go oh "
    "all kinda so think mom's pub-crawl quiz fox jumped over lazy dogs vexing"
).split()
GLM = """;; Hub5 GLM (excerpt format)
* name "en20000405_hub5.glm"
* desc "Global mapping file"
* format = 'NIST1'
* max_nrules = '1000'
* copy_no_hit = 'T'
* case_sensitive = 'F'

[UH] => %HESITATION / [ ] __ [ ]
[UM] => %HESITATION / [ ] __ [ ]
[I'M] => {I'M / I AM} / [ ] __ [ ]
[ALL RIGHT] => [ALRIGHT] / [ ] __ [ ]
[KINDA] => [KIND OF] / [ ] __ [ ]
[GONNA] => [GOING TO] / [ ] __ [ ] ;; trailing comment
[WANNA] => [WANT TO] / [ ] __ [ ] [PEOPLE]
"""


def write_sphere(path: Path, samples: np.ndarray, coding: str) -> None:
    """Write ``[frames, channels]`` int16 samples as NIST SPHERE: ``pcm`` (16-bit little
    endian), ``ulaw``, or a header announcing shorten (``ulaw,embedded-shorten-v2.00``; the
    body is then plain µ-law, enough to test that such files are detected, not read)."""
    frames, channels = samples.shape
    if coding == "pcm":
        body, sample_bytes, byte_format = samples.astype("<i2").tobytes(), 2, "01"
    else:
        buffer = io.BytesIO()
        sf.write(buffer, samples, SAMPLE_RATE, format="RAW", subtype="ULAW")
        body, sample_bytes, byte_format = buffer.getvalue(), 1, "1"
    fields = [
        "database_id -s30 Switchboard-1 Release 2 (LDC)",
        f"channel_count -i {channels}",
        f"sample_count -i {frames}",
        f"sample_rate -i {SAMPLE_RATE}",
        f"sample_n_bytes -i {sample_bytes}",
        f"sample_byte_format -s{len(byte_format)} {byte_format}",
        f"sample_coding -s{len(coding)} {coding}",
        "end_head",
    ]
    header = ("NIST_1A\n   1024\n" + "\n".join(fields) + "\n").encode().ljust(1024, b" ")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(header + body)


def conversation_audio(
    rng: np.random.Generator, seconds: float = CONVERSATION_SECONDS
) -> np.ndarray:
    """Two channels of tones in noise (int16)."""
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    channels = [
        0.3 * np.sin(2 * np.pi * f * t) * (np.sin(2 * np.pi * 0.7 * t) > 0)
        + 0.02 * rng.standard_normal(len(t))
        for f in (220.0, 330.0)
    ]
    return (np.stack(channels, axis=1) * 32767).astype(np.int16)


def generated_side(
    rng: np.random.Generator, seconds: float = CONVERSATION_SECONDS
) -> List[Tuple[str, str, str]]:
    """Segments of 1.2-1.6 s covering a side, with words from a small vocabulary."""
    segments, start = [("0.000000", "0.500000", "[silence]")], 0.5
    while start + 1.6 < seconds:
        stop = start + rng.uniform(1.2, 1.6)
        words = " ".join(rng.choice(WORDS, size=rng.integers(2, 6)))
        segments.append((f"{start:.6f}", f"{stop:.6f}", words))
        start = stop
    return segments


def write_transcript(folder: Path, conversation: str, side: str, segments) -> Path:
    """``swb_ms98_transcriptions/NN/NNNN/swNNNN{side}-ms98-a-trans.text``."""
    path = folder / conversation[:2] / conversation / f"sw{conversation}{side}-ms98-a-trans.text"
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [
        f"sw{conversation}{side}-ms98-a-{number:04d} {start} {stop} {words}"
        for number, (start, stop, words) in enumerate(segments, start=1)
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def make_switchboard_tree(
    root: Path, seed: int = 0, conversation_seconds: float = CONVERSATION_SECONDS
) -> Dict[str, Path]:
    """Write the miniature corpus below ``root``; returns the recipe's data paths. Real
    conversations last about 5 minutes (``conversation_seconds=300`` for benchmarks)."""
    rng = np.random.default_rng(seed)
    paths = {
        "data_folder": root / "LDC97S62",
        "transcripts_folder": root / "swb_ms98_transcriptions",
        "eval2000_folder": root / "LDC2002S09",
        "eval2000_reference_folder": root / "LDC2002T43",
    }
    for disc, (conversation, coding) in enumerate(
        [("2001", "pcm"), ("2005", "ulaw"), ("2010", "pcm"), ("2023", "ulaw")], start=1
    ):
        audio = conversation_audio(rng, conversation_seconds)
        write_sphere(
            paths["data_folder"] / f"swb1_d{disc}" / "data" / f"sw0{conversation}.sph",
            audio,
            coding,
        )
        for side in "AB":
            segments = (
                SW2001A
                if conversation + side == "2001A"
                else generated_side(rng, conversation_seconds)
            )
            write_transcript(paths["transcripts_folder"], conversation, side, segments)

    english = paths["eval2000_folder"] / "hub5e_00" / "english"
    pem = [";; hub5e_00.pem (excerpt)"]
    stm = [";; hub5e00.english.000405.stm (excerpt)"]
    references = [
        "oh yeah (%HESITATION) i'm gonna go",
        "all right (UH) we kinda know",
        "IGNORE_TIME_SEGMENT_IN_SCORING",
        "yeah i think so",
    ]
    for recording in ("en_4156", "sw_4390"):
        write_sphere(english / f"{recording}.sph", conversation_audio(rng, 8.0), "pcm")
        for side in "AB":
            for number, words in enumerate(references):
                start, stop = 0.3 + 1.8 * number, 1.8 + 1.8 * number
                pem.append(f"{recording} {side} unknown_speaker {start:.2f} {stop:.2f}")
                stm.append(
                    f"{recording} {side} {recording}_{side} {start:.3f} {stop:.3f} "
                    f"<O,en,F,en-F> {words}"
                )
    (english / "hub5e_00.pem").write_text("\n".join(pem) + "\n")
    reference = paths["eval2000_reference_folder"] / "reference"
    reference.mkdir(parents=True)
    (reference / "hub5e00.english.000405.stm").write_text("\n".join(stm) + "\n")
    (reference / "en20000405_hub5.glm").write_text(GLM)
    return paths

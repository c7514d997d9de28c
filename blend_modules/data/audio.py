"""Reading audio: whole files or segments of one channel, NIST SPHERE (Switchboard) included.

soundfile (libsndfile) reads SPHERE files coded as PCM, µ-law or A-law directly. LDC
distributes much of Switchboard shorten-compressed instead (``sample_coding`` ``...shorten...``),
which libsndfile cannot read: those files are detected from their header and decoded once with
``sph2pipe`` (the decoder Kaldi uses) into a cache of FLAC files, or refused with what to install.
"""

import logging
import os
import shutil
import subprocess
from pathlib import Path
from typing import Dict, Union

import soundfile as sf
import torch

logger = logging.getLogger(__name__)

PathLike = Union[str, Path]


SPHERE_MAGIC = b"NIST_1A"


SPHERE_READABLE_CODINGS = ("pcm", "ulaw", "mu-law", "alaw")  # what libsndfile decodes


SPH2PIPE_HELP = (
    "Install sph2pipe, e.g. with Kaldi (`cd $KALDI_ROOT/tools && make sph2pipe`), and put it "
    "on PATH or give its path as `sph2pipe` in the YAML"
)


def sphere_header(path: PathLike) -> Dict[str, Union[str, int, float]]:
    """The fields of a NIST SPHERE header (``key -i|-r|-sN value`` lines up to ``end_head``).

    Raises ``ValueError`` naming the file if it is not SPHERE or its header is malformed.
    """
    with open(path, "rb") as sph_file:
        head = sph_file.read(1024)
        if not head.startswith(SPHERE_MAGIC):
            raise ValueError(f"{path}: not a NIST SPHERE file (no NIST_1A magic).")
        lines = head.split(b"\n")
        try:
            header_size = int(lines[1])
        except (IndexError, ValueError) as error:
            raise ValueError(f"{path}: malformed SPHERE header size line.") from error
        if header_size > len(head):
            head += sph_file.read(header_size - len(head))
    fields = {}
    for line in head[:header_size].decode("ascii", errors="replace").splitlines()[2:]:
        if line.strip() == "end_head":
            return fields
        parts = line.split(maxsplit=2)
        if len(parts) < 3 or not parts[1].startswith("-"):
            continue  # comments and blank padding
        key, kind, value = parts
        fields[key] = int(value) if kind == "-i" else float(value) if kind == "-r" else value
    raise ValueError(f"{path}: SPHERE header has no end_head within {header_size} bytes.")


def is_shorten(header: Dict) -> bool:
    """Whether a SPHERE header announces shorten compression."""
    return "shorten" in str(header.get("sample_coding", ""))


def readable_audio(path: PathLike, cache_folder: PathLike, sph2pipe: str = "sph2pipe") -> Path:
    """A file soundfile can read with the audio of ``path``.

    Anything but SPHERE is returned as is. SPHERE PCM/µ-law/A-law files are read directly;
    shorten-compressed ones are decoded once with ``sph2pipe`` to ``cache_folder/<name>.flac``
    (16-bit, all channels; written to a temporary name and renamed, so a killed run leaves no
    half file). Raises ``ValueError`` naming the file for a coding no decoder handles, and
    ``RuntimeError`` saying what to install when ``sph2pipe`` is needed but missing.
    """
    path = Path(path)
    if path.suffix.lower() != ".sph":
        return path
    header = sphere_header(path)
    coding = str(header.get("sample_coding", "pcm"))
    if not is_shorten(header):
        if coding.split(",")[0] not in SPHERE_READABLE_CODINGS:
            raise ValueError(
                f"{path}: unsupported SPHERE sample_coding '{coding}' (readable: "
                f"{', '.join(SPHERE_READABLE_CODINGS)}, or shorten via sph2pipe)."
            )
        return path
    cached = Path(cache_folder) / f"{path.stem}.flac"
    if cached.is_file():
        return cached
    decoder = shutil.which(sph2pipe)
    if decoder is None:
        raise RuntimeError(
            f"{path} is shorten-compressed SPHERE (sample_coding '{coding}'), which soundfile "
            f"cannot read. {SPH2PIPE_HELP}; each file is then decoded once into {cache_folder}."
        )
    cached.parent.mkdir(parents=True, exist_ok=True)
    decoded_wav = cached.with_suffix(".decoding.wav")
    subprocess.run(
        [decoder, "-f", "wav", "-p", str(path), str(decoded_wav)], check=True, capture_output=True
    )
    samples, sample_rate = sf.read(str(decoded_wav), dtype="int16", always_2d=True)
    expected = (header.get("sample_count"), header.get("channel_count"))
    if (len(samples), samples.shape[1]) != expected:
        raise ValueError(
            f"{path}: {decoder} decoded {samples.shape} samples x channels, the header says "
            f"{expected}."
        )
    write_flac(cached, samples, sample_rate)
    decoded_wav.unlink()
    logger.info("Decoded %s to %s", path, cached)
    return cached


def write_flac(path: PathLike, samples, sample_rate: int) -> None:
    """16-bit FLAC written under a temporary name (``<name>.partial.flac``) and renamed: a
    killed process leaves the whole file or none, never half of one for a rerun to trust."""
    path = Path(path)
    partial = path.with_name(f"{path.stem}.partial.flac")
    sf.write(str(partial), samples, sample_rate, subtype="PCM_16")
    os.replace(partial, path)


def read_segment(
    path: PathLike, start: int = 0, stop: int = None, channel: int = 0
) -> torch.Tensor:
    """Samples ``[start, stop)`` of one channel of an audio file, as a float32 tensor;
    ``RuntimeError`` naming the file if it cannot be decoded (e.g. a truncated FLAC)."""
    try:
        samples, _ = sf.read(str(path), start=start, stop=stop, dtype="float32", always_2d=True)
    except (RuntimeError, sf.SoundFileError) as error:  # libsndfile names no file
        raise RuntimeError(f"{path}: cannot read samples [{start}, {stop}): {error}") from error
    return torch.from_numpy(samples[:, channel].copy())

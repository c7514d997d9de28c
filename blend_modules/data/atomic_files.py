"""Files written so that a killed process never leaves half of one, and their checksums."""

import hashlib
import os
from pathlib import Path
from typing import Callable


def file_sha256(path: Path) -> str:
    """SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def write_atomically(path: Path, write: Callable) -> None:
    """Call ``write(stream)`` on a temporary file beside ``path``, then rename it to ``path``:
    a killed process leaves the old file or none, never half of one."""
    partial = path.with_name(path.name + ".partial")
    with open(partial, "wb") as stream:
        write(stream)
        stream.flush()
        os.fsync(stream.fileno())
    os.replace(partial, path)

"""Files written so that a killed process never leaves half of one, and their checksums."""

import errno
import hashlib
import os
import tempfile
from pathlib import Path
from typing import Callable

UMASK = os.umask(0o022)  # read (and put back) once: files get the permissions open() gives
os.umask(UMASK)


def file_sha256(path: Path) -> str:
    """SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def write_atomically(path: Path, write: Callable) -> None:
    """Call ``write(stream)`` on a temporary file beside ``path``, then rename it to ``path``:
    a killed process leaves the old file or none, never half of one. The temporary name is
    this call's own, so processes writing the same file at once never write into each other's
    (the last rename wins, whole). A full disk is an ``OSError`` naming ``path``; the temporary
    file is removed on any error."""
    path = Path(path)
    descriptor, partial = tempfile.mkstemp(".partial", f"{path.name}.", path.parent)
    try:
        os.fchmod(descriptor, 0o666 & ~UMASK)  # as open() would create it, not mkstemp's 0o600
        with os.fdopen(descriptor, "wb") as stream:
            write(stream)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(partial, path)
    except BaseException as error:
        Path(partial).unlink(missing_ok=True)
        if isinstance(error, OSError) and error.errno == errno.ENOSPC:
            raise OSError(errno.ENOSPC, f"No space left on the device to write {path}") from error
        raise

"""Corpus preparation that runs once: it is redone only when its options change, and a run
killed midway never leaves a folder that looks prepared."""

import hashlib
import json
import logging
from pathlib import Path
from typing import Dict

from blend_modules.data.atomic_files import write_atomically

logger = logging.getLogger(__name__)

OPTIONS_FILE = "prepare_options.json"


def is_prepared(save_folder, options: Dict, options_file: str = OPTIONS_FILE) -> bool:
    """Whether ``save_folder`` holds a finished preparation made with exactly ``options``
    (``options_file`` tells apart several preparations that share a folder). An options file
    that cannot be read (e.g. torn by a crash before writes were atomic) means unprepared."""
    options_path = Path(save_folder) / options_file
    if not options_path.exists():
        return False
    try:
        return json.loads(options_path.read_text()) == options
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        logger.warning("%s cannot be read (%s): preparing again.", options_path, error)
        return False


def start_preparation(save_folder, options_file: str = OPTIONS_FILE) -> Path:
    """Create ``save_folder`` and mark it unprepared until ``finish_preparation``."""
    save_folder = Path(save_folder)
    save_folder.mkdir(parents=True, exist_ok=True)
    (save_folder / options_file).unlink(missing_ok=True)
    return save_folder


def finish_preparation(save_folder, options: Dict, options_file: str = OPTIONS_FILE) -> None:
    """Record the options the finished preparation was made with (atomically: a crash leaves
    the folder unprepared, never with a torn options file)."""
    text = json.dumps(options, indent=2).encode()
    write_atomically(Path(save_folder) / options_file, lambda stream: stream.write(text))


def folder_fingerprint(folder) -> str:
    """SHA-256 of the relative paths and sizes of the files under ``folder``: the same corpus
    copied or moved elsewhere keeps its fingerprint, so its preparation is not redone."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"Data folder not found: {folder}")
    listing = sorted(
        f"{path.relative_to(folder).as_posix()} {path.stat().st_size}"
        for path in folder.rglob("*")
        if path.is_file()
    )
    return hashlib.sha256("\n".join(listing).encode()).hexdigest()

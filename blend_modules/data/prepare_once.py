"""Corpus preparation that runs once: it is redone only when its options change, and a run
killed midway never leaves a folder that looks prepared."""

import hashlib
import json
from pathlib import Path
from typing import Dict

OPTIONS_FILE = "prepare_options.json"


def is_prepared(save_folder, options: Dict, options_file: str = OPTIONS_FILE) -> bool:
    """Whether ``save_folder`` holds a finished preparation made with exactly ``options``
    (``options_file`` tells apart several preparations that share a folder)."""
    options_path = Path(save_folder) / options_file
    return options_path.exists() and json.loads(options_path.read_text()) == options


def start_preparation(save_folder, options_file: str = OPTIONS_FILE) -> Path:
    """Create ``save_folder`` and mark it unprepared until ``finish_preparation``."""
    save_folder = Path(save_folder)
    save_folder.mkdir(parents=True, exist_ok=True)
    (save_folder / options_file).unlink(missing_ok=True)
    return save_folder


def finish_preparation(save_folder, options: Dict, options_file: str = OPTIONS_FILE) -> None:
    """Record the options the finished preparation was made with."""
    (Path(save_folder) / options_file).write_text(json.dumps(options, indent=2))


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

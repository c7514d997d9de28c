"""Checkpoints that survive a kill while they are being written, and the random states they
carry so that a resumed run continues exactly as an uninterrupted one."""

import errno
import logging
import random
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Dict

import numpy as np
import torch
from speechbrain.utils.checkpoints import (
    Checkpointer,
    mark_as_loader,
    mark_as_saver,
    register_checkpoint_hooks,
)
from speechbrain.utils.distributed import ddp_barrier, if_main_process

logger = logging.getLogger(__name__)

COMPLETE_MARKER = "COMPLETE"


# a run folder's files beside its checkpoints: the summary (written last: the run is done) and
# what its targets' outputs were when it started (a teacher is checked against them)
SUMMARY_FILE, OUTPUTS_FILE = "summary.json", "outputs.json"


DISK_NEARLY_FULL = 1 << 20  # bytes free below which a failed write is taken for a full disk


class CompleteCheckpointer(Checkpointer):
    """SpeechBrain's ``Checkpointer``, except that a checkpoint only counts once all its files
    are written.

    SpeechBrain writes a checkpoint's ``CKPT.yaml`` before its parameter files, so a process
    killed while saving leaves a checkpoint that looks complete, is chosen on resume and fails
    to load. Here an empty ``COMPLETE`` file is written after the parameters, and checkpoints
    without it are ignored (and reported, never deleted). Arguments are ``Checkpointer``'s.

    The checkpoint folder is only created by the first checkpoint saved: SpeechBrain's creates
    it as soon as the YAML is loaded, so a run refused by the data checks left an empty
    ``save/`` behind.
    """

    def __init__(self, checkpoints_dir, *args, **kwargs):
        # SpeechBrain makes its folder at once: given a folder that exists, it makes none, and
        # the first save makes ours (creating it and then removing it raced under DDP: one
        # process removed the folder while another was still making it)
        folder = Path(checkpoints_dir)
        existing = next(path for path in (folder, *folder.absolute().parents) if path.exists())
        super().__init__(existing, *args, **kwargs)
        self.checkpoints_dir = folder
        self.reported = set()

    def save_checkpoint(self, *args, **kwargs):
        """SpeechBrain's save, then the ``COMPLETE`` marker. A save that fails (a full disk)
        removes what it wrote of its checkpoint and names the folder; earlier checkpoints are
        untouched."""
        before = set(self.checkpoints_dir.glob("CKPT+*"))
        try:
            checkpoint = super().save_checkpoint(*args, **kwargs)
        except (OSError, RuntimeError) as error:  # torch.save reports a failed write as either
            if not if_main_process():
                raise
            for torn in set(self.checkpoints_dir.glob("CKPT+*")) - before:
                shutil.rmtree(torn, ignore_errors=True)
            full = getattr(error, "errno", None) == errno.ENOSPC
            full = full or shutil.disk_usage(self.checkpoints_dir.parent).free < DISK_NEARLY_FULL
            raise OSError(
                errno.ENOSPC if full else getattr(error, "errno", None),
                f"{'No space left on the device: ' if full else ''}saving a checkpoint in "
                f"{self.checkpoints_dir} failed ({error}); the torn checkpoint was removed, the "
                "earlier ones are intact: free space, then rerun to resume.",
            ) from error
        if if_main_process():
            (checkpoint.path / COMPLETE_MARKER).touch()
        # Under DDP every process must then list the same checkpoints: SpeechBrain's
        # save_and_keep_only has each process choose the checkpoints to delete, and deletes each
        # with a collective call; a process that saw the new checkpoint before its marker
        # issued one call fewer, and the processes hung or aborted (seen in 1 of 4 test runs).
        ddp_barrier()
        return checkpoint

    def list_checkpoints(self):
        if not self.checkpoints_dir.is_dir():
            return []
        checkpoints = []
        for checkpoint in super().list_checkpoints():
            if (checkpoint.path / COMPLETE_MARKER).exists():
                checkpoints.append(checkpoint)
            elif checkpoint.path not in self.reported:
                self.reported.add(checkpoint.path)
                logger.warning("Ignoring %s: its saving was interrupted.", checkpoint.path)
        return checkpoints


def random_states() -> Dict:
    """The Python, numpy, torch (and CUDA) random states."""
    return {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.random.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
    }


def set_random_states(states: Dict) -> None:
    """Restore states taken by ``random_states``."""
    random.setstate(states["python"])
    np.random.set_state(states["numpy"])
    torch.random.set_rng_state(states["torch"])
    if states["cuda"] is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


@contextmanager
def preserved_random_state():
    """Restore the random states on exit."""
    states = random_states()
    try:
        yield
    finally:
        set_random_states(states)


@register_checkpoint_hooks
class RandomStates:
    """The random states, checkpointed so that a resumed run draws the same dropout masks and
    shuffles as an uninterrupted one."""

    @mark_as_saver
    def _save(self, path):
        torch.save(random_states(), path)

    @mark_as_loader
    def _load(self, path, end_of_epoch):
        set_random_states(torch.load(path, weights_only=False))

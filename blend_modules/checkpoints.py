"""Checkpoints that survive a kill while they are being written."""

import logging

from speechbrain.utils.checkpoints import Checkpointer
from speechbrain.utils.distributed import if_main_process

logger = logging.getLogger(__name__)

COMPLETE_MARKER = "COMPLETE"


class CompleteCheckpointer(Checkpointer):
    """SpeechBrain's ``Checkpointer``, except that a checkpoint only counts once all its files
    are written.

    SpeechBrain writes a checkpoint's ``CKPT.yaml`` before its parameter files, so a process
    killed while saving leaves a checkpoint that looks complete, is chosen on resume and fails
    to load. Here an empty ``COMPLETE`` file is written after the parameters, and checkpoints
    without it are ignored (and reported, never deleted). Arguments are ``Checkpointer``'s.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.reported = set()

    def save_checkpoint(self, *args, **kwargs):
        checkpoint = super().save_checkpoint(*args, **kwargs)
        if if_main_process():
            (checkpoint.path / COMPLETE_MARKER).touch()
        return checkpoint

    def list_checkpoints(self):
        checkpoints = []
        for checkpoint in super().list_checkpoints():
            if (checkpoint.path / COMPLETE_MARKER).exists():
                checkpoints.append(checkpoint)
            elif checkpoint.path not in self.reported:
                self.reported.add(checkpoint.path)
                logger.warning("Ignoring %s: its saving was interrupted.", checkpoint.path)
        return checkpoints

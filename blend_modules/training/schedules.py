"""A fixed learning-rate schedule, the alternative to NewBob's annealing on valid loss:
linear warm-up, then cosine decay over a fixed number of epochs, set before every training step.

NewBob (SpeechBrain's ``NewBobScheduler``) halves the rate whenever valid loss stops improving,
so how long a model trains at which rate depends on valid's noise; this schedule is the same for
every run of the same length, whatever valid says.
"""

import math


class WarmupCosineDecay:
    """The learning rate at each point of training, from its progress in epochs (fractional):
    ``lr · progress / warmup_epochs`` during warm-up, then a cosine from ``lr`` down to
    ``lr · final_lr_fraction`` at the end of epoch ``epochs``. It keeps no state (the progress
    comes from the epoch counter and the step, both checkpointed), so a resumed run, even one
    resumed mid-epoch, continues on the same curve.

    Arguments
    ---------
    lr : float
        The peak learning rate, reached at the end of warm-up.
    epochs : int
        The length of training (e.g. ``!ref <number_of_epochs>``).
    warmup_epochs : float
        How long the rate rises from 0 (may be a fraction of an epoch; 0: no warm-up; at
        least ``epochs``: it only rises).
    final_lr_fraction : float
        The rate at the end, as a fraction of ``lr``.

    Example
    -------
    >>> schedule = WarmupCosineDecay(lr=1.0, epochs=10, warmup_epochs=1, final_lr_fraction=0.0)
    >>> schedule.lr_at(0.5), schedule.lr_at(1.0), round(schedule.lr_at(5.5), 3), schedule.lr_at(10)
    (0.5, 1.0, 0.5, 0.0)
    """

    def __init__(
        self, lr: float, epochs: int, warmup_epochs: float = 1.0, final_lr_fraction: float = 0.02
    ):
        if warmup_epochs < 0:
            raise ValueError(f"warmup_epochs must be at least 0, got {warmup_epochs}.")
        if not 0 <= final_lr_fraction <= 1:
            raise ValueError(f"final_lr_fraction must lie in [0, 1], got {final_lr_fraction}.")
        self.lr, self.epochs = lr, epochs
        self.warmup_epochs, self.final_lr_fraction = warmup_epochs, final_lr_fraction

    def lr_at(self, progress: float) -> float:
        """The learning rate ``progress`` epochs into training."""
        if progress < self.warmup_epochs:
            return self.lr * progress / self.warmup_epochs
        # (a run no longer than its warm-up never decays: e.g. a 1-epoch check)
        decay_epochs = max(self.epochs - self.warmup_epochs, 1e-9)
        decayed = min((progress - self.warmup_epochs) / decay_epochs, 1.0)
        final = self.lr * self.final_lr_fraction
        return final + (self.lr - final) * 0.5 * (1 + math.cos(math.pi * decayed))

    def __call__(self, optimizer, progress: float) -> float:
        """Set every parameter group of ``optimizer`` to the rate at ``progress``; return it."""
        lr = self.lr_at(progress)
        for group in optimizer.param_groups:
            group["lr"] = lr
        return lr

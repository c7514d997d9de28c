"""SpeechBrain ``Brain`` subclasses: the teacher's (hard targets) and the student's (blended).

Both expect the hparams keys ``features`` (with ``compute_features``), ``targets`` (see
:mod:`blend_modules.targets`), ``modules`` (``model`` and ``normalize``), ``lr_annealing``,
``train_logger`` and ``checkpointer``; batches carry ``sig`` and the targets' items. Best
checkpoints are chosen on the targets' valid error (frame error, or WER). Optional keys:
``spec_augment`` (with ``augment``), ``fixed_lr_schedule`` (with ``lr_schedule``, a
:class:`blend_modules.training.schedules.WarmupCosineDecay`, instead of ``lr_annealing``'s
NewBob) and ``test_breakdown``.
"""

import json
import logging
import time
from pathlib import Path
from typing import Optional

import speechbrain as sb
import torch
from speechbrain.utils.checkpoints import (
    mark_as_loader,
    mark_as_saver,
    register_checkpoint_hooks,
)

from blend_modules.data.frames import frame_counts, relative_lengths
from blend_modules.training.checkpoints import RandomStates
from blend_modules.training.devices import check_precision
from blend_modules.training.losses import (
    BlendLoss,
    blend_loss,
    soft_targets,
    teacher_confidence,
    teacher_topk,
)

logger = logging.getLogger(__name__)


class NonFiniteLoss(Exception):
    """Raised within a training step whose loss is NaN or infinite, to skip that step."""


@register_checkpoint_hooks
class EpochHistory:
    """Per-epoch stats and wall times, checkpointed so that a resumed run's summary still
    covers every epoch."""

    def __init__(self):
        self.epochs = []

    @property
    def train_seconds(self) -> float:
        """Wall time of all epochs (training and validation)."""
        return sum(epoch["time_s"] for epoch in self.epochs)

    @mark_as_saver
    def _save(self, path):
        Path(path).write_text(json.dumps(self.epochs))

    @mark_as_loader
    def _load(self, path, end_of_epoch):
        self.epochs = json.loads(Path(path).read_text())


class TeacherBrain(sb.Brain):
    """Trains a per-frame model on hard targets: the teacher (and the base of the student's
    Brain, which with ``hard_weight: 1.0`` trains the hard-label CNN baseline)."""

    def compute_features(self, batch):
        """Log mel filterbanks of the batch (before normalisation), relative wav lengths and
        the number of real frames of each utterance; ``ValueError`` naming the utterances whose
        features are not finite."""
        batch = batch.to(self.device)
        wavs, wav_lens = batch.sig
        features = self.hparams.features["compute_features"](wavs)
        if not torch.isfinite(features).all():  # bad data, not a training accident: stop
            bad = torch.isfinite(features).flatten(1).all(1).logical_not().nonzero().flatten()
            raise ValueError(
                "Features with NaN or inf values for utterance(s) "
                f"{', '.join(batch.id[i] for i in bad.tolist())}: check their audio."
            )
        return features, wav_lens, self.frame_lengths(batch)

    def training_mask(self, features, stage) -> Optional[torch.Tensor]:
        """A training batch's SpecAugment masks if the YAML asks (``spec_augment``: the
        ``augment`` block's ``masks``), as a 0/1 tensor of the features' shape: SpeechBrain's
        ``SpectrogramDrop`` sets masked values to zero, so the masks drawn on ones are the
        masks themselves, and one draw can mask the student's and the teacher's input alike.
        None otherwise."""
        if stage != sb.Stage.TRAIN or not getattr(self.hparams, "spec_augment", False):
            return None
        return self.hparams.augment["masks"](torch.ones_like(features))

    def model_logits(self, features, wav_lens, lengths, mask=None):
        """Normalise (updating global statistics while training), apply the ``mask`` (of
        :meth:`training_mask`) to the normalised features, and run the model, which takes the
        relative frame lengths (its outputs do not depend on the padding)."""
        epoch = self.hparams.epoch_counter.current
        normalized = self.modules.normalize(features, wav_lens, epoch=epoch)
        if mask is not None:
            normalized = normalized * mask
        return self.modules.model(normalized, relative_lengths(lengths, normalized.shape[1]))

    def compute_forward(self, batch, stage):
        """Per-frame logits ``[batch, frames, labels]``."""
        features, wav_lens, lengths = self.compute_features(batch)
        return self.model_logits(features, wav_lens, lengths, self.training_mask(features, stage))

    def frame_lengths(self, batch):
        """The number of real frames of each utterance of the batch."""
        wavs, wav_lens = batch.sig
        return frame_counts(wav_lens.to(self.device), wavs.shape[1], self.hparams.features)

    def compute_objectives(self, predictions, batch, stage):
        """The targets' hard loss (frame cross-entropy or CTC)."""
        lengths = self.frame_lengths(batch)
        hard = self.hparams.targets.hard_loss(predictions, batch.to(self.device), lengths)
        loss = blend_loss(hard, predictions, lengths)
        self.track(predictions, batch, lengths, loss)
        return loss.total

    def track(self, logits, batch, lengths, loss: BlendLoss):
        """Accumulate the targets' metrics and the two loss terms for this stage's log (not
        for a batch whose loss is not finite: training skips it)."""
        if not torch.isfinite(loss.total):
            return
        if self.metrics is not None:
            self.metrics.append(logits.detach(), batch, lengths)
        self.loss_terms["hard_loss"] += loss.hard.detach().item()
        self.loss_terms["soft_loss"] += loss.soft.detach().item()
        self.loss_terms["batches"] += 1

    def check_loss_isfinite(self, loss):
        """Raise ``NonFiniteLoss`` if the loss is NaN or infinite on any process (under DDP all
        processes then skip the step together, or their gradient exchange would hang)."""
        nonfinite = torch.tensor(float(not torch.isfinite(loss)), device=self.device)
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.all_reduce(nonfinite, op=torch.distributed.ReduceOp.MAX)
        if nonfinite.item():
            raise NonFiniteLoss

    def fit_batch(self, batch):
        """SpeechBrain's training step, except that a batch whose loss is not finite is
        skipped (no backward, no update; partly accumulated gradients are dropped) and counted
        in the epoch's ``skipped_nonfinite``. More than ``nonfinite_patience`` (a SpeechBrain run
        option, 3 by default) such batches in a row stop training with an error."""
        try:
            loss = super().fit_batch(batch)
        except NonFiniteLoss:
            self.optimizer.zero_grad(set_to_none=True)
            self.skipped_nonfinite += 1
            self.nonfinite_in_a_row += 1
            logger.warning(
                "Skipped a training batch whose loss is not finite (utterances %s); %d skipped "
                "this epoch.",
                ", ".join(batch.id),
                self.skipped_nonfinite,
            )
            if self.nonfinite_in_a_row > self.nonfinite_patience:
                raise RuntimeError(
                    f"{self.nonfinite_in_a_row} training batches in a row had a non-finite loss "
                    f"(last: utterances {', '.join(batch.id)}); stopping. The last checkpoint is "
                    "intact: lower lr, check these inputs, or train in fp32, then rerun."
                )
            return torch.tensor(self.avg_train_loss)  # leaves the running average unchanged
        self.nonfinite_in_a_row = 0
        return loss

    def make_dataloader(self, dataset, stage, *args, **loader_kwargs):
        """SpeechBrain's, also counting the training batches per epoch (for a fixed learning-rate
        schedule) and, for a ``batch_sampler`` (``DynamicBatchSampler``), having the Brain call
        its ``set_epoch`` before every epoch: without that every epoch after the first repeats
        the same batches in the same order."""
        loader = super().make_dataloader(dataset, stage, *args, **loader_kwargs)
        if stage == sb.Stage.TRAIN:
            self.train_batches = len(loader)
            batch_sampler = loader_kwargs.get("batch_sampler")
            if self.train_sampler is None and hasattr(batch_sampler, "set_epoch"):
                self.train_sampler = batch_sampler  # under DDP SpeechBrain's wrapper is set
        return loader

    def on_fit_batch_start(self, batch, should_step):
        """With ``fixed_lr_schedule``, set the learning rate of this step from the progress
        through training (epochs done and this epoch's share of steps)."""
        del batch, should_step
        if getattr(self.hparams, "fixed_lr_schedule", False):
            epochs_done = self.hparams.epoch_counter.current - 1
            self.hparams.lr_schedule(self.optimizer, epochs_done + self.step / self.train_batches)

    def on_stage_start(self, stage, epoch=None):
        """Reset this stage's metrics (and start the epoch's clock)."""
        if stage == sb.Stage.TRAIN:
            self.epoch_start = time.time()
            self.skipped_nonfinite, self.nonfinite_in_a_row = 0, 0
        # test metrics also per value of a manifest column (e.g. age group) if the YAML asks
        group_by = getattr(self.hparams, "test_breakdown", None) if stage == sb.Stage.TEST else None
        self.metrics = self.hparams.targets.metrics(stage, group_by)
        self.loss_terms = {"hard_loss": 0.0, "soft_loss": 0.0, "batches": 0}

    def stage_stats(self, stage, stage_loss) -> dict:
        """Loss, its terms and metrics of the stage that just ended (and, for training, the
        number of batches skipped for a non-finite loss)."""
        batches = max(self.loss_terms["batches"], 1)
        stats = {"loss": stage_loss}
        if self.metrics is not None:
            stats.update(self.metrics.summarize())
        if stage == sb.Stage.TRAIN:
            stats["skipped_nonfinite"] = self.skipped_nonfinite
        if self.loss_terms["soft_loss"] > 0:  # a teacher took part
            stats["hard_loss"] = self.loss_terms["hard_loss"] / batches
            stats["soft_loss"] = self.loss_terms["soft_loss"] / batches
        return stats

    def on_stage_end(self, stage, stage_loss, epoch=None):
        """Log, anneal the learning rate on valid loss (unless the schedule is fixed), keep the
        best checkpoint on valid."""
        stats = self.stage_stats(stage, stage_loss)
        if stage == sb.Stage.TRAIN:
            self.train_stats = stats
            return
        if stage == sb.Stage.VALID:
            if getattr(self.hparams, "fixed_lr_schedule", False):
                old_lr = self.optimizer.param_groups[0]["lr"]  # the epoch's last step's
            else:
                old_lr, new_lr = self.hparams.lr_annealing(stats["loss"])
                sb.nnet.schedulers.update_learning_rate(self.optimizer, new_lr)
            self.hparams.train_logger.log_stats(
                stats_meta={"epoch": epoch, "lr": old_lr},
                train_stats=self.train_stats,
                valid_stats=stats,
            )
            self.history.epochs.append(
                {
                    "epoch": epoch,
                    "lr": old_lr,
                    "time_s": round(time.time() - self.epoch_start, 1),
                    "train": self.train_stats,
                    "valid": stats,
                }
            )
            self.checkpointer.save_and_keep_only(
                meta={"epoch": epoch, **stats}, min_keys=[self.hparams.targets.error_key]
            )
        else:
            self.hparams.train_logger.log_stats(
                stats_meta={
                    "Epoch loaded": self.hparams.epoch_counter.current,
                    "test set": self.test_set,
                },
                test_stats=stats,
            )
            if sb.utils.distributed.if_main_process():
                self.metrics.write(Path(self.hparams.output_folder), self.test_set)
            self.test_stats[self.test_set] = stats

    def evaluate_test_sets(self, test_sets: dict, **evaluate_kwargs) -> dict:
        """Evaluate on each named test set; returns (and keeps in ``test_stats``) their stats."""
        self.test_stats = {}
        for self.test_set, dataset in test_sets.items():
            self.evaluate(dataset, **evaluate_kwargs)
        return self.test_stats

    def evaluate_fit(self, dataset, loader_kwargs: dict) -> dict:
        """Hard loss and frame metrics (nothing decoded) of the model as it is, on ``dataset``
        in eval mode: no dropout, no masks, fixed weights. On the training set this is how well
        the model fits its own training data; the training stats logged during an epoch are
        taken with dropout and masks on and the weights moving, which understates the fit of a
        regularised model and so the gap to valid."""
        loader = self.make_dataloader(dataset, sb.Stage.TEST, **loader_kwargs)
        self.metrics = self.hparams.targets.metrics(sb.Stage.TRAIN)  # training's: no decoding
        self.loss_terms = {"hard_loss": 0.0, "soft_loss": 0.0, "batches": 0}
        self.modules.eval()
        total, batches = 0.0, 0
        with torch.no_grad():
            for batch in loader:
                total += float(self.evaluate_batch(batch, sb.Stage.VALID))  # hard loss only
                batches += 1
        return self.stage_stats(sb.Stage.VALID, total / max(batches, 1))

    def on_fit_start(self):
        """Checkpoint the per-epoch history and the random states with the model (before
        resuming from a checkpoint)."""
        self.history = EpochHistory()
        if self.checkpointer is not None:
            self.checkpointer.add_recoverable("history", self.history)
            self.checkpointer.add_recoverable("random_states", RandomStates())
        super().on_fit_start()


class StudentBrain(TeacherBrain):
    """Trains a student on ``λ · hard CE + (1-λ) · soft CE`` to the teacher's top-k labels.

    The teacher's top-k log-probabilities come either from ``teacher`` (online: run in eval
    mode under ``no_grad`` on the same padded batch), or from the batch's ``teacher_topk_ids``
    and ``teacher_topk_log_probs`` (offline store); both become soft targets at
    ``temperature`` the same way. With ``hard_weight: 1.0`` no teacher is needed and this is a
    plain hard-target baseline. Validation and test always report the hard loss.
    """

    def __init__(self, *args, teacher: torch.nn.Module = None, **kwargs):
        super().__init__(*args, **kwargs)
        if teacher is not None:  # online: the teacher runs in the student's precision
            num_features = self.hparams.features["n_mels"]
            check_precision(self.precision, self.device, teacher, num_features, "--precision")
        self.teacher = teacher.to(self.device).eval() if teacher is not None else None

    def compute_forward(self, batch, stage):
        """Student logits, plus the online teacher's logits on training batches: of the same
        masked input as the student's with ``consistent_augmentation`` (the masks applied to
        each model's own normalised features), of the clean input otherwise."""
        if self.teacher is None or stage != sb.Stage.TRAIN:
            return super().compute_forward(batch, stage), None
        features, wav_lens, lengths = self.compute_features(batch)
        mask = self.training_mask(features, stage)
        consistent = getattr(self.hparams, "consistent_augmentation", False)
        with torch.no_grad():
            teacher_logits = self.teacher(features, lengths, mask if consistent else None)
        return self.model_logits(features, wav_lens, lengths, mask), teacher_logits

    def compute_objectives(self, predictions, batch, stage):
        """The blend loss on training batches, hard-label CE otherwise."""
        student_logits, teacher_logits = predictions
        lengths = self.frame_lengths(batch)
        hard = self.hparams.targets.hard_loss(student_logits, batch.to(self.device), lengths)
        if stage != sb.Stage.TRAIN or self.hparams.hard_weight == 1.0:
            loss = blend_loss(hard, student_logits, lengths)
        else:
            if teacher_logits is not None:
                teacher_topk_ids, teacher_topk_log_probs = teacher_topk(
                    teacher_logits, self.hparams.top_k
                )
                self.track_teacher(teacher_logits, lengths)
            else:
                teacher_topk_ids = batch.teacher_topk_ids.data
                teacher_topk_log_probs = batch.teacher_topk_log_probs.data
            loss = blend_loss(
                hard,
                student_logits,
                lengths,
                teacher_topk_ids,
                soft_targets(teacher_topk_log_probs, self.hparams.temperature),
                hard_weight=self.hparams.hard_weight,
                temperature=self.hparams.temperature,
                soft_loss=self.hparams.soft_loss,
                blank_index=getattr(self.hparams.targets, "blank_index", None),
            )
        self.track(student_logits, batch, lengths, loss)
        return loss.total

    def track_teacher(self, teacher_logits, lengths):
        """Accumulate the online teacher's confidence on the frames it labels."""
        top1, entropy, frames = teacher_confidence(teacher_logits, lengths)
        self.teacher_stats["top1"] += top1.item()
        self.teacher_stats["entropy"] += entropy.item()
        self.teacher_stats["frames"] += frames.item()

    def on_stage_start(self, stage, epoch=None):
        """Also reset the online teacher's confidence statistics."""
        super().on_stage_start(stage, epoch)
        self.teacher_stats = {"top1": 0.0, "entropy": 0.0, "frames": 0}

    def stage_stats(self, stage, stage_loss) -> dict:
        """Add the online teacher's mean top-1 probability and entropy to training stats."""
        stats = super().stage_stats(stage, stage_loss)
        if self.teacher_stats["frames"]:
            stats["teacher_top1"] = self.teacher_stats["top1"] / self.teacher_stats["frames"]
            stats["teacher_entropy"] = self.teacher_stats["entropy"] / self.teacher_stats["frames"]
        return stats


class EnsembleBrain(TeacherBrain):
    """Evaluates (never trains) ``modules.model``, a
    :class:`blend_modules.models.ensemble.PosteriorAverage` of trained models, each with its own
    input normalisation, on the batch's features."""

    def compute_forward(self, batch, stage):
        """Per-frame log-probabilities of the ensemble ``[batch, frames, labels]``."""
        features, _, lengths = self.compute_features(batch)
        return self.modules.model(features, lengths)

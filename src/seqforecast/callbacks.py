"""Callbacks: checkpoint at the end of training and on SIGINT/SIGTERM (then stop); a progress
bar light per batch; the checkpoint writer the Trainer uses (atomic, beside its target)."""

from __future__ import annotations

import contextlib
import random
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback, TQDMProgressBar
from lightning.pytorch.plugins.io import TorchCheckpointIO
from lightning.pytorch.utilities.exceptions import SIGTERMException

from seqforecast.errors import SeqforecastError
from seqforecast.outputs import atomic_open


class TrainingInterrupted(SeqforecastError):
    """SIGINT or SIGTERM stopped training after a checkpoint was saved."""

    def __init__(self, message: str, signum: int) -> None:
        super().__init__(message)
        self.signum = signum

    def __reduce__(self) -> tuple:
        # Picklable with its signal number (raised in a reproduction's worker process).
        return type(self), (str(self), self.signum)


class PreemptionCheckpoint(Callback):
    """On SIGINT or SIGTERM, finish the current training step, save ``last.ckpt`` and stop;
    save ``last.ckpt`` at the end of training too.

    The checkpoint is written at the end of the current training batch (the point Lightning
    resumes from exactly: its loops and the train loader's position are in the
    checkpoint), then :class:`TrainingInterrupted` is raised. The process RNG states travel
    in the checkpoint, so a resumed run continues the same stream.

    SIGTERM is Lightning's own: its handler sets ``trainer.received_sigterm``, read here. Lightning
    turns a SIGINT into a ``KeyboardInterrupt`` and a shutdown without a checkpoint, so this
    callback holds SIGINT during the fit. A SIGTERM that arrives outside a training batch (in
    an epoch's end hooks, say) stops Lightning at its next safe point with ``SIGTERMException``;
    if that point lies in training (between batches, or after an epoch), ``on_exception``
    saves the checkpoint there and sets :attr:`stopped`, the error to raise instead.
    """

    def __init__(self, dirpath: str, filename: str = "last.ckpt") -> None:
        self.path = Path(dirpath) / filename
        self.stopped: TrainingInterrupted | None = None
        self._sigint = False
        self._previous: Any = None  # the SIGINT handler before the fit

    def _handle(self, signum: int, frame: Any) -> None:
        self._sigint = True

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._sigint, self.stopped = False, None
        self._previous = signal.signal(signal.SIGINT, self._handle)

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, i: int
    ) -> None:
        if self._sigint or trainer.received_sigterm:
            trainer.save_checkpoint(self.path, weights_only=False)
            signum = signal.SIGINT if self._sigint else signal.SIGTERM
            raise self._interrupted(trainer, signum, f" after {i + 1} batches")

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # The run's final state in last.ckpt: the periodic writer (conf/callbacks/default.yaml,
        # train_time_interval) may have last written it many epochs ago. Not after a stop by an
        # exception (on_exception), nor when a resumed run had nothing left to train.
        if not trainer.fast_dev_run:
            trainer.save_checkpoint(self.path, weights_only=False)

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._restore()

    def on_exception(
        self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException
    ) -> None:
        self._restore()
        if isinstance(exception, SIGTERMException) and trainer.training:
            trainer.save_checkpoint(self.path, weights_only=False)
            self.stopped = self._interrupted(trainer, signal.SIGTERM, "")

    def _interrupted(self, trainer: L.Trainer, signum: int, after: str) -> TrainingInterrupted:
        name = signal.Signals(signum).name
        return TrainingInterrupted(
            f"{name} received: saved {self.path} at epoch {trainer.current_epoch}{after}; "
            f"continue with resume={self.path.parent.parent}",
            signum,
        )

    def _restore(self) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
        self._previous = None

    def state_dict(self) -> dict[str, Any]:
        return {"torch_rng": torch.get_rng_state(), "python_rng": random.getstate()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        torch.set_rng_state(state_dict["torch_rng"])
        random.setstate(state_dict["python_rng"])


@contextlib.contextmanager
def sigterm_interrupts(trainer: L.Trainer, run_dir: str | Path) -> Iterator[None]:
    """Turn Lightning's ``SIGTERMException`` (a ``SystemExit`` with status 0) into
    :class:`TrainingInterrupted`, so a stopped run ends ``interrupted`` with status 143.

    When the signal stopped training, :class:`PreemptionCheckpoint` saved where Lightning
    stopped; when it stopped validation or testing, the run's last checkpoint stays the one to
    continue from. On the way out SIGINT gets back its handler from before: after a failed
    fit, Lightning's teardown puts back the handlers it found as the fit began, among them
    the one :class:`PreemptionCheckpoint` had installed.
    """
    previous = signal.getsignal(signal.SIGINT)
    try:
        yield
    except SIGTERMException:
        saved = (c.stopped for c in trainer.callbacks if isinstance(c, PreemptionCheckpoint))
        raise next((s for s in saved if s), None) or TrainingInterrupted(
            f"SIGTERM received outside a training step: nothing new saved; continue with "
            f"resume={run_dir}",
            signal.SIGTERM,
        ) from None
    finally:
        signal.signal(signal.SIGINT, previous)


class ProgressBar(TQDMProgressBar):
    """Lightning's tqdm bar, without rebuilding its metrics after every training batch.

    ``ForecastModule`` puts its metrics on the bar once an epoch (``train/loss`` at the
    epoch's end, the validation metrics after validation), and Lightning's epoch and
    validation hooks of this bar draw them then. Per training batch this bar only advances
    its count (tqdm redraws it at most every ``mininterval``, 0.1 s); the stock bar also
    rebuilds and redraws the metrics dict after every batch. A module that logs per-step
    metrics to the bar should use ``TQDMProgressBar``.
    """

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, i: int
    ) -> None:
        n = i + 1
        if self.is_enabled and (n % self.refresh_rate == 0 or n == self.total_train_batches):
            bar = self.train_progress_bar
            bar.update(n - bar.n)


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's ``TorchCheckpointIO``, writing each checkpoint atomically, beside its target
    (:func:`seqforecast.outputs.atomic_open`).

    Lightning's own save writes through fsspec, whose local files are staged in ``TMPDIR``
    and copied into place: killed mid-copy, a checkpoint is left empty or cut.
    """

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: str | Path, storage_options: Any = None
    ) -> None:
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} takes no storage_options")
        with atomic_open(path) as f:  # streamed: no second copy of the checkpoint in memory
            torch.save(checkpoint, f)

"""Callbacks: checkpoint and stop on SIGINT/SIGTERM; a progress bar light per step."""

from __future__ import annotations

import random
import signal
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback, TQDMProgressBar

from seqforecast.errors import SeqforecastError


class TrainingInterrupted(SeqforecastError):
    """SIGINT or SIGTERM stopped training after a checkpoint was saved."""

    def __init__(self, message: str, signum: int) -> None:
        super().__init__(message)
        self.signum = signum

    def __reduce__(self) -> tuple:
        # Picklable with its signal number (raised in a reproduction's worker process).
        return type(self), (str(self), self.signum)


class PreemptionCheckpoint(Callback):
    """On SIGINT or SIGTERM, finish the current training step, save ``last.ckpt`` and stop.

    The checkpoint is written at the end of a ``training_step`` call (a group of
    ``data.batches_per_call`` batches; the point Lightning resumes from exactly), then
    :class:`TrainingInterrupted` is raised. The process
    RNG states travel in the checkpoint, so a resumed run continues the same stream.
    """

    def __init__(self, dirpath: str, filename: str = "last.ckpt") -> None:
        self.path = Path(dirpath) / filename
        self._signum: int | None = None
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: Any) -> None:
        self._signum = signum

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._signum = None
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._previous[sig] = signal.signal(sig, self._handle)

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._restore()

    def on_exception(
        self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException
    ) -> None:
        self._restore()

    def _restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous = {}

    def on_train_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        signum = self._signum or (signal.SIGTERM if trainer.received_sigterm else None)
        if signum is None:
            return
        trainer.save_checkpoint(self.path, weights_only=False)
        name = signal.Signals(signum).name
        done = getattr(pl_module, "train_batches", batch_idx + 1)  # batches of this epoch
        raise TrainingInterrupted(
            f"{name} received: saved {self.path} at epoch {trainer.current_epoch} after "
            f"{done} batches; continue with resume={self.path.parent.parent}",
            signum,
        )

    def state_dict(self) -> dict[str, Any]:
        return {"torch_rng": torch.get_rng_state(), "python_rng": random.getstate()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        torch.set_rng_state(state_dict["torch_rng"])
        random.setstate(state_dict["python_rng"])


class ProgressBar(TQDMProgressBar):
    """Lightning's tqdm bar, counting batches (optimizer steps), with no metrics work per step.

    With grouped training steps (``data.batches_per_call``) Lightning's bar would count
    ``training_step`` calls; this one counts the batches of the epoch, as Keras does
    (``219/219``), whenever the train loader's sampler says how many batches a call takes
    (:class:`~seqforecast.data.batches.BatchIndexSampler`) and the module counts the
    batches it has done (``train_batches``); otherwise it counts calls. ``ForecastModule``'s
    bar metrics change once an epoch (``train/loss`` at its end, ``val/mse`` after
    validation), when Lightning's epoch and validation hooks write them; per training step
    this bar only advances its count, and tqdm redraws it at most every ``mininterval``
    (0.1 s). The stock bar redraws twice and rebuilds its metrics every step. A module that
    logs per-step metrics to the bar should use ``TQDMProgressBar``.
    """

    _counts_batches = False

    def on_train_epoch_start(self, trainer: L.Trainer, *args: Any) -> None:
        self._counts_batches = self._batch_sampler() is not None
        super().on_train_epoch_start(trainer, *args)

    def _batch_sampler(self) -> Any:
        """The train sampler when it gives ``batches_per_call`` and ``n_batches`` and the
        module counts its batches (``train_batches``); else None (the bar counts calls)."""
        sampler = getattr(self.trainer.train_dataloader, "sampler", None)
        counted = hasattr(self.trainer.lightning_module, "train_batches")
        grouped = hasattr(sampler, "batches_per_call") and hasattr(sampler, "n_batches")
        return sampler if counted and grouped else None

    @property
    def total_train_batches(self) -> int | float:
        """Batches of this epoch (calls when they cannot be counted; ``inf`` if unknown)."""
        calls = super().total_train_batches
        sampler = self._batch_sampler()
        if sampler is None or calls == float("inf"):
            return calls
        # Limited epochs (limit_train_batches, fast_dev_run) take whole groups, but the
        # last group of an epoch may be short.
        return min(calls * sampler.batches_per_call, sampler.n_batches)

    def on_train_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        calls = batch_idx + 1
        if self.is_enabled and (
            calls % self.refresh_rate == 0 or calls == super().total_train_batches
        ):
            n = pl_module.train_batches if self._counts_batches else calls
            # tqdm's own update: it redraws at most every `mininterval` (0.1 s); the epoch's
            # end redraws the final count with the metrics.
            bar = self.train_progress_bar
            bar.update(n - bar.n)

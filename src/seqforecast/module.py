"""``ForecastModule``: the LightningModule that trains and scores any forecaster."""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import partial

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.core.optimizer import LightningOptimizer
from lightning.pytorch.utilities.model_helpers import is_overridden
from torch import nn
from torchmetrics import MeanSquaredError

from seqforecast.data.batches import BatchGroup
from seqforecast.data.windows import check_window
from seqforecast.errors import ConfigError, NonFiniteLossError
from seqforecast.models import build_net, output_steps
from seqforecast.models.init import INITS, adam_eps, keras_init_

EVAL_STAGES = ("val", "test")
# Hooks Lightning dispatches around each backward and optimizer step (manual_backward,
# LightningOptimizer.step); the direct step path runs only while nothing overrides them.
STEP_HOOKS = ("on_before_backward", "on_after_backward", "on_before_optimizer_step")


@dataclass
class EpochProgress:
    """The current epoch's training so far: summed loss (weighted by rows), rows, batches.

    A plain object rather than module attributes, so that its per-step updates skip
    ``nn.Module.__setattr__``.
    """

    loss_sum: float = 0.0
    rows: int = 0
    batches: int = 0


def direct_optimizer_step(optimizer: LightningOptimizer) -> None:
    """``optimizer.step()`` minus the strategy and precision layers (one device, full precision).

    What ``LightningOptimizer.step`` does there, less its per-step hook dispatch: the torch
    step between the two callbacks through which Lightning's manual-optimization loop
    counts optimizer steps (``global_step``, ``max_steps``, checkpoints rely on them).
    """
    optimizer._on_before_step()
    optimizer.optimizer.step()
    optimizer._on_after_step()


class ForecastModule(L.LightningModule):
    """Builds its network from primitive hparams; MSE loss, Adam, per-stage MSE metrics.

    Batches are ``(x [B, T, F], y)`` with ``y [B, k]`` (``target="next"``) or
    ``[B, T, k]`` (``target="seq2seq"``); a seq2seq net with fewer output steps than
    inputs (``[B, T', k]``) is scored on ``y[:, output_steps]``, the targets of the input
    steps its outputs end at. ``init="keras"`` re-initialises the net like Keras
    (:func:`~seqforecast.models.init.keras_init_`); ``adam_eps=None`` follows ``init``
    (Keras 1e-7, torch 1e-8). Training uses manual optimization: each ``training_step``
    call gets a group of batches (:class:`~seqforecast.data.batches.BatchGroup`) and
    takes one Adam step per batch, so Lightning's per-call work is paid once per group;
    ``gradient_clip_val`` (norm, or ``gradient_clip_algorithm="value"``) clips every
    step, and a non-finite loss stops training before its ``backward``. Logged metrics:
    ``train/loss`` (epoch mean), ``{val,test}/mse`` (over every output) and
    ``{val,test}/mse_last`` (the last time step's ``k`` outputs, the chapter's
    ``last_time_step_mse``; equal to ``mse`` for ``next`` targets).
    """

    def __init__(
        self,
        net: str = "rnn",
        hidden: list[int] | None = None,
        head: str = "linear",
        n_steps: int = 50,
        n_features: int = 1,
        horizon: int = 1,
        target: str = "next",
        lr: float = 1e-3,
        init: str = "torch",
        adam_eps: float | None = None,
        filters: int = 20,
        kernel_size: int = 4,
        stride: int = 2,
        dilations: list[int] | None = None,
        impl: str = "fused",
        gradient_clip_val: float | None = None,
        gradient_clip_algorithm: str = "norm",
    ) -> None:
        super().__init__()
        check_window(n_steps, horizon, target)
        if not isinstance(lr, int | float) or isinstance(lr, bool) or not lr > 0:
            raise ConfigError(f"model.lr must be a positive number, got {lr!r}")
        if init not in INITS:
            raise ConfigError(f"model.init={init!r} is unknown; choose one of {list(INITS)}")
        if adam_eps is not None and (
            not isinstance(adam_eps, int | float) or isinstance(adam_eps, bool) or not adam_eps > 0
        ):
            raise ConfigError(f"model.adam_eps must be a positive number or null, got {adam_eps!r}")
        if gradient_clip_algorithm not in ("norm", "value"):
            raise ConfigError(
                "trainer.gradient_clip_algorithm must be 'norm' or 'value', got "
                f"{gradient_clip_algorithm!r}"
            )
        self.save_hyperparameters()
        # Several optimizer steps per training_step call (see the class docstring).
        self.automatic_optimization = False
        self.net = build_net(
            net,
            n_steps=n_steps,
            n_features=n_features,
            horizon=horizon,
            target=target,
            hidden=hidden,
            head=head,
            filters=filters,
            kernel_size=kernel_size,
            stride=stride,
            dilations=dilations,
            impl=impl,
        )
        if init == "keras":
            keras_init_(self.net)
        steps = output_steps(self.net, n_steps) if target == "seq2seq" else list(range(n_steps))
        if steps[-1] != n_steps - 1:
            raise ConfigError(
                f"model.net={net}: the last output step ends at input step {steps[-1]}, but "
                f"forecasts must follow the whole window (step n_steps - 1 = {n_steps - 1}); "
                "pick model.kernel_size, model.stride with (n_steps - kernel_size) % stride == 0"
            )
        # Input steps whose seq2seq targets the outputs align to; None when all of them.
        self.steps = None if steps == list(range(n_steps)) else torch.tensor(steps)
        # The epoch's summed training loss (a float: each step reads its loss once anyway,
        # for the non-finite check), its series and its batches (reset every epoch; a
        # mid-epoch checkpoint keeps them).
        self.epoch_progress = EpochProgress()
        self.direct_step = False  # set at the start of fit (see on_train_start)
        self.mse = nn.ModuleDict({s: MeanSquaredError() for s in EVAL_STAGES})
        self.mse_last = nn.ModuleDict({s: MeanSquaredError() for s in EVAL_STAGES})

    @property
    def train_batches(self) -> int:
        """Training batches done in the current epoch (where a mid-epoch resume continues)."""
        return self.epoch_progress.batches

    @property
    def trainable(self) -> bool:
        """Whether the network has parameters to fit (the naive baseline has none)."""
        return any(p.requires_grad for p in self.net.parameters())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x [B, T, F] -> [B, k]`` or ``[B, T, k]``."""
        return self.net(x)

    def last_step(self, y: torch.Tensor) -> torch.Tensor:
        """The forecast of the last input step: ``[B, T, k] -> [B, k]``; ``[B, k]`` unchanged."""
        return y[:, -1] if self.hparams.target == "seq2seq" else y

    def forecast(self, x: torch.Tensor) -> torch.Tensor:
        """The direct forecast of the ``k`` steps after each window: ``[B, T, F] -> [B, k]``."""
        return self.last_step(self(x))

    def align(self, y: torch.Tensor) -> torch.Tensor:
        """Seq2seq targets of the steps the net outputs: ``[B, T, k] -> [B, T', k]``."""
        return y if self.steps is None else y[:, self.steps.to(y.device)]

    def train_loss(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The MSE loss of one training batch, added to the epoch's running sum.

        Raises :class:`NonFiniteLossError` on a NaN/inf loss, before its backward can
        reach the weights. The loss value is the step's one host read (no per-step
        ``self.log``: it took about a fifth of the fit of these tiny models).
        """
        loss = F.mse_loss(self(x), self.align(y))
        value = loss.item()
        if not math.isfinite(value):
            raise NonFiniteLossError(
                f"training loss became {value} at epoch {self.current_epoch}, batch "
                f"{self.train_batches} (global step {self.global_step}); likely causes: a "
                f"learning rate too high (model.lr={self.hparams.lr}) or non-finite input "
                "data; no checkpoint was written from this step (try a lower model.lr or "
                "trainer.gradient_clip_val)"
            )
        progress = self.epoch_progress
        progress.loss_sum += value * len(x)
        progress.rows += len(x)
        return loss

    def _eval_step(self, batch: tuple[torch.Tensor, torch.Tensor], stage: str) -> None:
        x, y = batch
        y, y_hat = self.align(y), self(x)
        # update(), not forward: the epoch's value is what is logged, no per-batch value.
        self.mse[stage].update(y_hat.reshape(-1), y.reshape(-1))
        last, last_hat = self.last_step(y).reshape(-1), self.last_step(y_hat).reshape(-1)
        self.mse_last[stage].update(last_hat, last)

    def _log_eval(self, stage: str) -> None:
        # Once per epoch, not per batch (each self.log of a metric costs about 0.3 ms):
        # Lightning computes the metric (reduced across processes under DDP) and resets it.
        self.log(f"{stage}/mse", self.mse[stage], prog_bar=stage == "val")
        self.log(f"{stage}/mse_last", self.mse_last[stage])

    def on_train_epoch_start(self) -> None:
        self.epoch_progress = EpochProgress()

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        # A mid-epoch checkpoint (preemption) carries the epoch's partial training loss and
        # the batches done, where the resumed epoch continues.
        progress = self.epoch_progress
        checkpoint["train_loss_epoch"] = [progress.loss_sum, progress.rows, progress.batches]

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        loss_sum, rows, *batches = checkpoint.get("train_loss_epoch", [0.0, 0, 0])
        self.epoch_progress = EpochProgress(float(loss_sum), rows, batches[0] if batches else 0)

    def on_train_start(self) -> None:
        # On one device in full precision, manual_backward and LightningOptimizer.step are
        # loss.backward() and optimizer.step() plus per-step hook dispatch, about a tenth of
        # an epoch of these ~2 ms steps (README, Speed): the step calls torch directly unless a
        # callback or this module overrides one of those hooks (or `backward`), so hooks
        # that exist always run. DDP (gradient sync) and mixed precision (loss scaling)
        # go through Lightning.
        trainer = self.trainer
        listened = any(
            is_overridden(hook, callback, L.Callback)
            for callback in trainer.callbacks
            for hook in STEP_HOOKS
        ) or any(is_overridden(hook, self, L.LightningModule) for hook in (*STEP_HOOKS, "backward"))
        self.direct_step = (
            trainer.world_size == 1
            and trainer.precision in ("32-true", "64-true")
            and not listened
            and hasattr(self.optimizers(), "_on_before_step")
        )

    def training_step(self, batch: BatchGroup, batch_idx: int) -> None:
        """One Adam step per ``(x, y)`` batch of the group, in order."""
        optimizer = self.optimizers()
        if self.direct_step:  # torch itself (see on_train_start)
            zero_grad, backward = optimizer.optimizer.zero_grad, torch.Tensor.backward
            step = partial(direct_optimizer_step, optimizer)
        else:
            zero_grad, backward, step = optimizer.zero_grad, self.manual_backward, optimizer.step
        clip, algorithm = self.hparams.gradient_clip_val, self.hparams.gradient_clip_algorithm
        progress = self.epoch_progress
        # trainer.max_steps counts optimizer steps: the epoch's batch count to stop at
        # (-1: no limit), so that the loop reads no trainer state per step.
        max_steps = self.trainer.max_steps
        stop = progress.batches + max_steps - self.trainer.global_step if max_steps >= 0 else -1
        for x, y in batch:
            loss = self.train_loss(x, y)
            zero_grad(set_to_none=True)
            backward(loss)
            if clip:
                self.clip_gradients(
                    optimizer, gradient_clip_val=clip, gradient_clip_algorithm=algorithm
                )
            step()
            progress.batches += 1
            if 0 <= stop <= progress.batches:
                break

    def on_train_epoch_end(self) -> None:
        """Log ``train/loss``: the epoch's mean loss, weighted by batch size."""
        progress = self.epoch_progress
        if progress.rows:
            # sync_dist: the mean over every process under DDP (one reduce per epoch).
            mean = torch.tensor(progress.loss_sum / progress.rows, device=self.device)
            self.log("train/loss", mean, prog_bar=True, sync_dist=True)

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        self._eval_step(batch, "val")

    def test_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        self._eval_step(batch, "test")

    def on_validation_epoch_end(self) -> None:
        self._log_eval("val")

    def on_test_epoch_end(self) -> None:
        self._log_eval("test")

    def predict_step(self, batch: tuple[torch.Tensor, ...], batch_idx: int) -> torch.Tensor:
        return self(batch[0])

    def configure_optimizers(self) -> torch.optim.Optimizer:
        eps = adam_eps(self.hparams.init, self.hparams.adam_eps)
        # fused=True: one kernel per step for all parameters (same Adam math, fewer tiny ops).
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr, eps=eps, fused=True)

"""``ForecastModule``: the LightningModule that trains and scores any forecaster."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import lightning as L
import torch
from lightning.pytorch.plugins import MixedPrecision
from torch import nn
from torchmetrics import MeanSquaredError

from seqforecast.errors import ConfigError, NonFiniteLossError
from seqforecast.losses import build_loss
from seqforecast.models import NetSettings, build_net, output_steps
from seqforecast.models.init import adam_eps, keras_init_
from seqforecast.models.norm import net_outputs, wrap
from seqforecast.rules import PROBABILITIES, check, check_value
from seqforecast.schedules import build_scheduler, check_scheduler, set_total_steps

EVAL_STAGES = ("val", "test")
# Hyperparameters that checkpoints of earlier versions carry and that no longer mean anything
# to the module: the layer implementation is now chosen when a run or a prediction starts
# (``layers``, see seqforecast.fast), and gradient clipping is the Trainer's.
LEGACY_HPARAMS = ("impl", "gradient_clip_val", "gradient_clip_algorithm")


@dataclass
class EpochLoss:
    """The current epoch's training loss, summed where it was computed.

    ``add`` folds each batch's loss, weighted by its rows, into one running sum without
    reading it (no host sync on an accelerator); :meth:`total` is that sum. One small tensor
    lives at a time: a list of per-batch losses, kept between the batches' large buffers,
    pinned the allocator's heap so that memory grew by megabytes a batch over a long epoch.
    A plain object, not module attributes, so that per-step updates skip
    ``nn.Module.__setattr__``.
    """

    sum: torch.Tensor | None = None  # float32 scalar on the losses' device
    n_rows: int = 0

    def add(self, loss: torch.Tensor, rows: int) -> None:
        part = loss.detach().float() * rows
        self.sum = part if self.sum is None else self.sum + part
        self.n_rows += rows

    def total(self) -> torch.Tensor:
        """The summed loss of every row so far (a float32 scalar on the losses' device)."""
        if self.sum is None:
            raise ValueError("no training loss added in this epoch")
        return self.sum


class ForecastModule(L.LightningModule):
    """Builds its network from primitive hparams; its loss, Adam, per-stage metrics.

    Batches are ``(x [B, T, F], y)`` with ``y [B, k]`` (``target="next"``) or
    ``[B, T, k]`` (``target="seq2seq"``); a seq2seq net with fewer output steps than
    inputs (``[B, T', k]``) is scored on ``y[:, output_steps]``, the targets of the input
    steps its outputs end at. ``init="keras"`` re-initialises the net like Keras
    (:func:`~seqforecast.models.init.keras_init_`); ``adam_eps=None`` follows ``init``
    (Keras 1e-7, torch 1e-8). ``scheduler`` is a plain dict naming a learning-rate schedule
    and its settings (:mod:`seqforecast.schedules`; ``None``: constant rate). Every setting
    is checked by its rule (:mod:`seqforecast.rules`), here or in
    :func:`~seqforecast.models.build_net`, whether it comes from a config, from Python or
    from a checkpoint.

    Training is Lightning's automatic optimization: ``training_step`` returns the loss of
    one batch, and the Trainer does backward, clipping, accumulation, precision and the
    optimizer and scheduler steps. A non-finite loss stops training before its backward
    (checked each step on the CPU, where reading the loss costs nothing; on an accelerator,
    without a host sync per step, before any checkpoint is written and at the epoch's end).
    Logged metrics: ``train/loss`` (epoch mean, weighted by batch size), ``{val,test}/mse``
    (over every output) and ``{val,test}/mse_last`` (the last time step's ``k`` outputs,
    the chapter's ``last_time_step_mse``; equal to ``mse`` for ``next`` targets).

    ``loss``: ``mse``, ``quantile`` (pinball at ``quantiles``) or ``gaussian`` (NLL), see
    :mod:`seqforecast.losses`. The last two widen the net's output ``P`` times, keep
    ``forward`` the point forecast (median or mean; :meth:`forward_dist` and
    :meth:`forecast_quantiles` give the distribution; ``predict_step`` both) and also log
    ``{val,test}/pinball``, ``/crps`` and ``/coverage-<L>`` on the last step's ``k`` outputs.

    ``window_norm``: ``none``, ``last``, ``revin`` (``revin_affine``) or ``seasonal`` (with
    ``season``, the season length ``m <= n_steps``; ignored by the other modes, which save it
    as 1), see :mod:`seqforecast.models.norm`. Checkpoints saved before ``season`` existed
    load with 1.

    Args:
        net: The network (:func:`~seqforecast.models.build_net`): ``naive``, ``linear``,
            ``rnn``, ``lstm``, ``gru``, ``ln_rnn``, ``rnn_bn``, ``conv_gru``, ``wavenet``,
            ``wavenet_gated``.
        hidden: Widths of the recurrent layers (and of ``conv_gru``'s GRUs).
        head: Recurrent nets' output: ``linear``, ``per_step`` or ``none``.
        n_steps: Input steps per window ``T``.
        n_features: Features per input step ``F``.
        horizon: Steps of one forecast ``k``.
        target: ``next`` (``y [B, k]``) or ``seq2seq`` (``y [B, T, k]``).
        lr: Adam's learning rate.
        init: Weight initialisation: ``torch`` or ``keras``.
        adam_eps: Adam's epsilon; ``None``: the one of ``init``.
        filters: Channels of the conv nets.
        kernel_size: Kernel of ``conv_gru``'s and ``wavenet``'s convolutions.
        stride: Stride of ``conv_gru``'s convolution.
        dilations: ``wavenet``'s dilations, one layer (or gated block) each.
        scheduler: ``{"name": ..., <its settings>}`` (:mod:`seqforecast.schedules`);
            ``None``: a constant rate.
        loss: ``mse``, ``quantile`` or ``gaussian``.
        quantiles: Quantile levels in (0, 1) of the ``quantile`` and ``gaussian`` losses;
            ``None``: their defaults (:data:`seqforecast.losses.DEFAULT_LEVELS`).
        window_norm: ``none``, ``last``, ``revin`` or ``seasonal``.
        revin_affine: ``revin`` learns a per-feature scale and shift.
        season: Season length ``m`` for ``window_norm=seasonal``.
        **legacy: Hyperparameters of earlier checkpoints, accepted and ignored.

    Raises:
        ConfigError: A setting is not allowed, or the settings do not fit together (a head
            that does not suit the target, a season longer than the window).
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
        scheduler: dict[str, Any] | None = None,
        loss: str = "mse",
        quantiles: list[float] | None = None,
        window_norm: str = "none",
        revin_affine: bool = True,
        season: int = 1,
        **legacy: Any,
    ) -> None:
        super().__init__()
        unknown = sorted(set(legacy) - set(LEGACY_HPARAMS))
        if unknown:
            raise ConfigError(f"model.{unknown[0]} is not a setting of ForecastModule")
        check("model.lr", lr)
        check("model.init", init)
        check("model.adam_eps", adam_eps)
        check("model.window_norm", window_norm)
        check("model.revin_affine", revin_affine)
        check("model.season", season)
        self.schedule = check_scheduler(scheduler)
        self.save_hyperparameters(ignore=list(legacy))
        self.objective = build_loss(loss, quantiles, net, head, EVAL_STAGES)
        self.hparams.quantiles = self.objective.level_list  # saved resolved (mse: None)
        if window_norm != "seasonal":  # ignored: saved as 1, so a checkpoint resumes and
            self.hparams.season = 1  # compares equal whatever the run's season
        settings = NetSettings.from_hparams(self.hparams)
        # P values per forecast step ([B, k * P], viewed as [B, k, P]); 1 for mse.
        self.net = build_net(replace(settings, horizon=horizon * self.objective.n_params))
        if init == "keras":
            keras_init_(self.net)
        if window_norm == "seasonal" and n_steps < season:
            raise ConfigError(
                f"model.season={season} is longer than model.n_steps={n_steps}: "
                "window_norm=seasonal reads the last season from the window; "
                "pick n_steps >= season"
            )
        self.net = wrap(
            self.net, window_norm, net, n_features, revin_affine, self.objective, season
        )
        steps = output_steps(self.net, n_steps) if target == "seq2seq" else list(range(n_steps))
        if steps[-1] != n_steps - 1:
            raise ConfigError(
                f"model.net={net}: the last output step ends at input step {steps[-1]}, but "
                f"forecasts must follow the whole window (step n_steps - 1 = {n_steps - 1}); "
                "pick model.kernel_size, model.stride with (n_steps - kernel_size) % stride == 0"
            )
        # Input steps whose seq2seq targets the outputs align to; None when all of them.
        self.steps = None if steps == list(range(n_steps)) else torch.tensor(steps)
        self.epoch_loss = EpochLoss()
        self.mse = nn.ModuleDict({s: MeanSquaredError() for s in EVAL_STAGES})
        self.mse_last = nn.ModuleDict({s: MeanSquaredError() for s in EVAL_STAGES})

    @property
    def trainable(self) -> bool:
        """Whether the network has parameters to fit (the naive baseline has none)."""
        return any(p.requires_grad for p in self.net.parameters())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x [B, T, F] -> [B, k]`` or ``[B, T, k]``: the point forecast (median or mean)."""
        return self.objective.point(self.net(x))  # [B, (T,) k * P] -> [B, (T,) k]

    def forward_dist(self, x: torch.Tensor) -> torch.Tensor:
        """``x [B, T, F] -> [B, k, P]`` or ``[B, T, k, P]``: the quantiles at
        ``hparams.quantiles`` (``quantile``), the mean and scale (``gaussian``) or the point
        (``mse``, ``P = 1``)."""
        return self.objective.dist(*net_outputs(self.net, x))

    def forecast_quantiles(
        self, x: torch.Tensor, quantiles: list[float] | None = None
    ) -> torch.Tensor:
        """Quantiles of the direct forecast, ``[B, T, F] -> [B, k, Q]``, at ``quantiles``
        (default ``hparams.quantiles``; a quantile model has only its own levels).

        Args:
            x: Windows ``[B, T, F]``.
            quantiles: Levels in (0, 1); ``None``: ``hparams.quantiles``.

        Returns:
            ``[B, k, Q]``, non-decreasing along ``Q``.

        Raises:
            ConfigError: An ``mse`` model, a level outside (0, 1), or (quantile loss) a level
                the model was not trained for.
        """
        levels = None if quantiles is None else check_value("quantiles", quantiles, PROBABILITIES)
        return self.objective.quantiles(self.last_step(self.forward_dist(x)), levels)

    def last_step(self, y: torch.Tensor) -> torch.Tensor:
        """The forecast of the last input step: ``[B, T, k] -> [B, k]``; ``[B, k]`` unchanged."""
        return y[:, -1] if self.hparams.target == "seq2seq" else y

    def forecast(self, x: torch.Tensor) -> torch.Tensor:
        """The direct forecast of the ``k`` steps after each window: ``[B, T, F] -> [B, k]``."""
        return self.last_step(self(x))

    def align(self, y: torch.Tensor) -> torch.Tensor:
        """Seq2seq targets of the steps the net outputs: ``[B, T, k] -> [B, T', k]``."""
        return y if self.steps is None else y[:, self.steps.to(y.device)]

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> Any:
        """The loss of one ``(x, y)`` batch, added to the epoch's running sum."""
        x, y = batch
        # MSE, pinball or Gaussian NLL of every aligned output.
        loss = self.objective.loss(self.forward_dist(x), self.align(y))
        self.epoch_loss.add(loss, len(x))
        if loss.device.type == "cpu" and not math.isfinite(value := loss.item()):
            self._stop(f"at epoch {self.current_epoch}, batch {batch_idx}", value)
        return loss

    def _stop(self, where: str, value: float) -> None:
        raise NonFiniteLossError(
            f"training loss became {value} {where} (global step {self.global_step}); likely "
            f"causes: a learning rate too high (model.lr={self.hparams.lr}) or non-finite input "
            "data; no checkpoint was written from this step (try a lower model.lr or "
            "trainer.gradient_clip_val)"
        )

    def check_finite(self) -> None:
        """Raise :class:`NonFiniteLossError` if the epoch's training loss so far is NaN/inf.

        One host read; on the CPU every step was already checked in ``training_step``.
        """
        if self.epoch_loss.n_rows and not math.isfinite(value := self.epoch_loss.total().item()):
            self._stop(f"in epoch {self.current_epoch}", value)

    def _eval_step(self, batch: tuple[torch.Tensor, torch.Tensor], stage: str) -> None:
        x, y = batch
        y, (raw, spread) = self.align(y), net_outputs(self.net, x)
        y_hat = self.objective.point(raw)
        # update(), not forward: the epoch's value is what is logged, no per-batch value.
        self.mse[stage].update(y_hat.reshape(-1), y.reshape(-1))
        last, last_hat = self.last_step(y).reshape(-1), self.last_step(y_hat).reshape(-1)
        self.mse_last[stage].update(last_hat, last)
        dist = self.last_step(self.objective.dist(raw, spread))  # [B, k, P]
        self.objective.update_scores(stage, dist, self.last_step(y))  # none for mse

    def _log_eval(self, stage: str) -> None:
        # Once per epoch: Lightning computes each metric (reduced across processes under
        # DDP) and resets it. Both validation metrics go to the progress bar, since either
        # may be the monitored one.
        bar = stage == "val"
        self.log(f"{stage}/mse", self.mse[stage], prog_bar=bar)
        self.log(f"{stage}/mse_last", self.mse_last[stage], prog_bar=bar)
        for name, mean in self.objective.stage_means(stage):  # none for mse
            self.log(f"{stage}/{name}", mean)

    def on_train_start(self) -> None:
        # Step schedules learn the run's length now that Lightning has the train loader
        # (see seqforecast.schedules for why not in configure_optimizers).
        for config in self.trainer.lr_scheduler_configs:
            set_total_steps(config.scheduler, self.trainer.estimated_stepping_batches)

    def on_train_epoch_start(self) -> None:
        # Not called when Lightning resumes mid-epoch: the checkpoint's partial sum goes on.
        self.epoch_loss = EpochLoss()

    def on_train_epoch_end(self) -> None:
        """Log ``train/loss``: the epoch's mean loss, weighted by batch size."""
        if self.epoch_loss.n_rows:
            self.check_finite()
            mean = self.epoch_loss.total() / self.epoch_loss.n_rows
            # sync_dist: the mean over every process under DDP (one reduce per epoch).
            self.log("train/loss", mean, prog_bar=True, sync_dist=True)

    def on_validation_epoch_start(self) -> None:
        if self.trainer.training:  # validation inside fit: never score (or save) bad weights
            self.check_finite()

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        self._eval_step(batch, "val")

    def test_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        self._eval_step(batch, "test")

    def predict_step(
        self, batch: torch.Tensor | tuple[torch.Tensor, torch.Tensor], batch_idx: int
    ) -> dict[str, torch.Tensor]:
        """The direct forecast of a batch's windows, for ``Trainer.predict``.

        ``batch``: ``(x, y)`` (the DataModule's ``predict_dataloader``, the test windows) or
        the inputs ``x [B, T, F]`` alone. Returns ``{"forecast": [B, k]}`` (:meth:`forecast`)
        and, for ``model.loss=quantile|gaussian``, ``"quantiles": [B, k, Q]`` at
        ``hparams.quantiles`` (:meth:`forecast_quantiles`), from one pass of the net; float32.

        Args:
            batch: ``(x, y)`` or ``x [B, T, F]``.
            batch_idx: The batch's index (unused).

        Returns:
            ``{"forecast": [B, k]}``, plus ``"quantiles": [B, k, Q]`` for distribution losses.
        """
        x = batch[0] if isinstance(batch, tuple | list) else batch
        raw, spread = net_outputs(self.net, x)  # [B, (T',) k * P]
        out = {"forecast": self.last_step(self.objective.point(raw)).float()}  # [B, k]
        if self.objective.level_list is not None:
            dist = self.last_step(self.objective.dist(raw, spread))  # [B, k, P]
            out["quantiles"] = self.objective.quantiles(dist).float()  # [B, k, Q]
        return out

    def on_validation_epoch_end(self) -> None:
        self._log_eval("val")

    def on_test_epoch_end(self) -> None:
        self._log_eval("test")

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        # Every checkpoint (best, last, periodic, preemption) passes here first: none is
        # written from non-finite training. A mid-epoch one carries the epoch's partial loss.
        self.check_finite()
        epoch = self.epoch_loss
        total = epoch.total().item() if epoch.n_rows else 0.0
        checkpoint["train_loss_epoch"] = [total, epoch.n_rows]

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        total, rows, *_ = checkpoint.get("train_loss_epoch", [0.0, 0])
        self.epoch_loss = EpochLoss()
        if rows:
            self.epoch_loss.add(torch.tensor(float(total) / rows, device=self.device), int(rows))

    def _mixed_precision(self) -> bool:
        """Whether the Trainer runs under autocast (``16-mixed``, ``bf16-mixed``)."""
        try:
            plugin = self.trainer.precision_plugin
        except RuntimeError:  # not attached to a Trainer (built by hand)
            return False
        return isinstance(plugin, MixedPrecision)

    def configure_optimizers(self) -> Any:
        eps = adam_eps(self.hparams.init, self.hparams.adam_eps)
        # fused: one kernel per step for all parameters (same Adam math, fewer tiny ops).
        # Not under mixed precision (16-mixed, or bf16-mixed, which 16-mixed becomes on the
        # CPU): Lightning's MixedPrecision plugin refuses gradient clipping for an optimizer
        # that unscales inside its own step, as fused Adam does, so trainer.gradient_clip_val
        # would stop the run at its first step.
        fused = not self._mixed_precision()
        lr = self.hparams.lr
        optimizer = torch.optim.Adam(self.parameters(), lr=lr, eps=eps, fused=fused)
        scheduler = build_scheduler(self.schedule, optimizer, lr)
        if scheduler is None:
            return optimizer
        return {"optimizer": optimizer, "lr_scheduler": scheduler}

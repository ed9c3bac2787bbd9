"""``ForecastModule``: the LightningModule that trains and scores any forecaster."""

from __future__ import annotations

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics import MeanSquaredError

from seqforecast.data.windows import check_window
from seqforecast.errors import ConfigError
from seqforecast.models import build_net

EVAL_STAGES = ("val", "test")


class ForecastModule(L.LightningModule):
    """Builds its network from primitive hparams; MSE loss, Adam, per-stage MSE metrics.

    Batches are ``(x [B, T, F], y)`` with ``y [B, k]`` (``target="next"``) or
    ``[B, T, k]`` (``target="seq2seq"``). Logged metrics: ``train/loss`` (epoch mean),
    ``{val,test}/mse`` (over every output) and ``{val,test}/mse_last`` (the last time
    step's ``k`` outputs, the chapter's ``last_time_step_mse``; equal to ``mse`` for
    ``next`` targets).
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
        impl: str = "fused",
    ) -> None:
        super().__init__()
        check_window(n_steps, horizon, target)
        if not isinstance(lr, int | float) or isinstance(lr, bool) or not lr > 0:
            raise ConfigError(f"model.lr must be a positive number, got {lr!r}")
        self.save_hyperparameters()
        self.net = build_net(
            net,
            n_steps=n_steps,
            n_features=n_features,
            horizon=horizon,
            target=target,
            hidden=hidden,
            head=head,
            impl=impl,
        )
        self.train_loss_sum, self.train_count = torch.zeros(()), 0  # reset every epoch
        self.mse = nn.ModuleDict({s: MeanSquaredError() for s in EVAL_STAGES})
        self.mse_last = nn.ModuleDict({s: MeanSquaredError() for s in EVAL_STAGES})

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

    def _step(self, batch: tuple[torch.Tensor, torch.Tensor], stage: str) -> torch.Tensor:
        x, y = batch
        y_hat = self(x)
        loss = F.mse_loss(y_hat, y)
        if stage == "train":
            # Summed on the device, logged once per epoch: a per-step self.log took about
            # a fifth of the fit of these tiny models (cProfile, README "Speed").
            self.train_loss_sum.add_(loss.detach(), alpha=len(x))
            self.train_count += len(x)
        else:
            mse, mse_last = self.mse[stage], self.mse_last[stage]
            mse(y_hat.reshape(-1), y.reshape(-1))
            mse_last(self.last_step(y_hat).reshape(-1), self.last_step(y).reshape(-1))
            self.log(f"{stage}/mse", mse, on_epoch=True, prog_bar=stage == "val", batch_size=len(x))
            self.log(f"{stage}/mse_last", mse_last, on_epoch=True, batch_size=len(x))
        return loss

    def on_train_epoch_start(self) -> None:
        self.train_loss_sum = torch.zeros((), device=self.device)
        self.train_count = 0

    def training_step(
        self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int
    ) -> torch.Tensor:
        return self._step(batch, "train")

    def on_train_epoch_end(self) -> None:
        """Log ``train/loss``: the epoch's mean loss, weighted by batch size."""
        if self.train_count:
            self.log("train/loss", self.train_loss_sum / self.train_count, prog_bar=True)

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        self._step(batch, "val")

    def test_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        self._step(batch, "test")

    def predict_step(self, batch: tuple[torch.Tensor, ...], batch_idx: int) -> torch.Tensor:
        return self(batch[0])

    def configure_optimizers(self) -> torch.optim.Optimizer:
        # fused=True: one kernel per step for all parameters (same Adam math, fewer tiny ops).
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr, fused=True)

"""Baselines: the naive last-value forecast and the linear model."""

from __future__ import annotations

import torch
from torch import nn


class Naive(nn.Module):
    """Repeat the last observed value for every horizon step; no parameters.

    Inputs ``x [B, T, F]`` (feature 0 is the target). Outputs ``[B, k]``, or with
    ``per_step`` ``[B, T, k]`` where step ``t`` repeats ``x[:, t, 0]``.
    """

    def __init__(self, horizon: int, per_step: bool = False) -> None:
        super().__init__()
        self.horizon, self.per_step = horizon, per_step

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        last = x[..., :1] if self.per_step else x[:, -1, :1]  # [B, T, 1] or [B, 1]
        return last.expand(*last.shape[:-1], self.horizon)  # [..., k]


class Linear(nn.Module):
    """Flatten the whole window and map it linearly to the horizon.

    ``x [B, T, F] -> [B, T * F] -> [B, k]``; the window length is fixed at ``n_steps``.
    """

    def __init__(self, n_steps: int, n_features: int, horizon: int) -> None:
        super().__init__()
        self.n_steps, self.n_features = n_steps, n_features
        self.linear = nn.Linear(n_steps * n_features, horizon)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x.flatten(1))  # [B, T * F] -> [B, k]

"""Output heads on top of a sequence of hidden states ``[B, T, H]``."""

from __future__ import annotations

import torch
from torch import nn


class LastStepHead(nn.Module):
    """Seq2vec head: a linear map of the last hidden state. ``[B, T, H] -> [B, k]``."""

    def __init__(self, hidden: int, horizon: int) -> None:
        super().__init__()
        self.linear = nn.Linear(hidden, horizon)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.linear(h[:, -1])  # [B, H] -> [B, k]


class PerStepHead(nn.Module):
    """Seq2seq head (Keras ``TimeDistributed(Dense(k))``). ``[B, T, H] -> [B, T, k]``."""

    def __init__(self, hidden: int, horizon: int) -> None:
        super().__init__()
        self.linear = nn.Linear(hidden, horizon)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.linear(h)  # [B, T, H] -> [B, T, k]


class StateHead(nn.Module):
    """No parameters: the last layer's state is the prediction (the book's ``SimpleRNN(1)``).

    ``[B, T, k] -> [B, k]`` for ``next`` targets, identity for ``seq2seq``.
    """

    def __init__(self, per_step: bool) -> None:
        super().__init__()
        self.per_step = per_step

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return h if self.per_step else h[:, -1]

"""Output heads on top of a sequence of hidden states ``[B, T, H]``."""

from __future__ import annotations

import torch
from torch import nn


class LinearHead(nn.Module):
    """A linear map of every hidden state (``per_step``: seq2seq, Keras
    ``TimeDistributed(Dense(k))``) or of the last one (seq2vec).

    ``[B, T, H] -> [B, T, k]`` (``per_step``) or ``[B, k]``.
    """

    def __init__(self, hidden: int, horizon: int, per_step: bool) -> None:
        super().__init__()
        self.linear = nn.Linear(hidden, horizon)
        self.per_step = per_step

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.linear(h if self.per_step else h[:, -1])  # [B, (T,) H] -> [B, (T,) k]


class StateHead(nn.Module):
    """No parameters: the last layer's state is the prediction (the book's ``SimpleRNN(1)``).

    ``[B, T, k] -> [B, k]`` for ``next`` targets, identity for ``seq2seq``.
    """

    def __init__(self, per_step: bool) -> None:
        super().__init__()
        self.per_step = per_step

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return h if self.per_step else h[:, -1]

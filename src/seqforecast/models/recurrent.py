"""Recurrent stacks: one single-layer recurrent module per width, with a head."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from itertools import pairwise

import torch
from torch import nn

from seqforecast.models.norm_rnn import LayerNormRNN

# One batch-first recurrent layer ``(n_in, n_out)``: ``[B, T, n_in] -> ([B, T, n_out], state)``.
CELLS: dict[str, Callable[[int, int], nn.Module]] = {
    "rnn": partial(nn.RNN, batch_first=True),
    "lstm": partial(nn.LSTM, batch_first=True),
    "gru": partial(nn.GRU, batch_first=True),
    "ln_rnn": LayerNormRNN,
}


class RecurrentStack(nn.Module):
    """Stacked recurrent layers of the given widths, all returning sequences.

    ``x [B, T, F] -> [B, T, hidden[-1]]``. Layers are separate modules so that
    widths may differ (the book's ``[20, 20, 1]``); ``cell`` is a key of :data:`CELLS`.
    ``batch_norm``: each layer is followed by ``BatchNorm1d`` (book cell 61), which
    normalises each unit over batch and time (Keras ``axis=-1``), so it runs on the
    channels-first view ``[B, H, T]``.
    """

    def __init__(
        self, cell: str, n_features: int, hidden: list[int], batch_norm: bool = False
    ) -> None:
        super().__init__()
        sizes = [n_features, *hidden]
        self.layers = nn.ModuleList(CELLS[cell](a, b) for a, b in pairwise(sizes))
        self.norms = nn.ModuleList(nn.BatchNorm1d(h) for h in hidden) if batch_norm else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i, layer in enumerate(self.layers):
            x, _ = layer(x)  # [B, T, H_in] -> [B, T, H_out]
            if self.norms is not None:  # normalised over (B, T) per unit
                x = self.norms[i](x.transpose(1, 2)).transpose(1, 2)
        return x


class RecurrentForecaster(nn.Module):
    """A recurrent stack followed by a head: ``x [B, T, F] -> [B, k]`` or ``[B, T, k]``."""

    def __init__(self, stack: nn.Module, head: nn.Module) -> None:
        super().__init__()
        self.stack, self.head = stack, head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.stack(x))  # [B, T, H] -> [B, k] | [B, T, k]

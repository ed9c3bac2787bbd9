"""The layer-normalised RNN cell, one layer of it (its stack is a ``RecurrentStack``)."""

from __future__ import annotations

import torch
from torch import nn


class LayerNormRNN(nn.Module):
    """One layer of the book's ``LNSimpleRNNCell``: ``h_t = tanh(LN(W x_t + b + U h_{t-1}))``.

    Like ``nn.RNN(batch_first=True)`` it maps ``x [B, T, F] -> (out [B, T, H], h_T [1, B, H])``
    from a zero initial state, and it names its weights as ``nn.RNN`` does
    (``weight_ih_l0``, ``weight_hh_l0``) but keeps Keras's single bias (``bias_ih_l0``).
    The step loop below is the definition; :mod:`seqforecast.fast` swaps in a layer that
    computes the same equations with a hand-written backward.
    """

    def __init__(self, input_size: int, hidden_size: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.input_size, self.hidden_size = input_size, hidden_size
        bound = hidden_size**-0.5  # nn.RNN's default U(-1/sqrt(H), 1/sqrt(H))

        def uniform(*shape: int) -> nn.Parameter:
            return nn.Parameter(torch.empty(*shape).uniform_(-bound, bound))

        self.weight_ih_l0 = uniform(hidden_size, input_size)
        self.weight_hh_l0 = uniform(hidden_size, hidden_size)
        self.bias_ih_l0 = uniform(hidden_size)
        self.norm = nn.LayerNorm(hidden_size, eps=eps)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        xw = x @ self.weight_ih_l0.T + self.bias_ih_l0  # [B, T, F] -> [B, T, H], all steps at once
        h = x.new_zeros(x.shape[0], self.hidden_size)  # [B, H]
        outs = []
        for t in range(x.shape[1]):
            h = torch.tanh(self.norm(xw[:, t] + h @ self.weight_hh_l0.T))  # [B, H]
            outs.append(h)
        return torch.stack(outs, dim=1), h.unsqueeze(0)  # [B, T, H], [1, B, H]

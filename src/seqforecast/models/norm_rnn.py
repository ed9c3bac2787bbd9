"""Normalised recurrent stacks: the layer-normalised RNN cell and RNN layers with BatchNorm."""

from __future__ import annotations

from itertools import pairwise

import torch
from torch import nn

from seqforecast.errors import ConfigError
from seqforecast.models.fused_ln import LayerNormRNNFunction
from seqforecast.models.recurrent import IMPLS


class LayerNormRNN(nn.Module):
    """One layer of the book's ``LNSimpleRNNCell``: ``h_t = tanh(LN(W x_t + b + U h_{t-1}))``.

    Like ``nn.RNN(batch_first=True)`` it maps ``x [B, T, F] -> (out [B, T, H], h_T [1, B, H])``
    from a zero initial state, and it names its weights as ``nn.RNN`` does
    (``weight_ih_l0``, ``weight_hh_l0``) but keeps Keras's single bias (``bias_ih_l0``).
    ``impl="torch"`` runs the readable step loop below (the reference); ``impl="fused"``
    runs the same equations as one :class:`~seqforecast.models.fused_ln.LayerNormRNNFunction`
    with a hand-written backward. Both hold the same parameters.
    """

    def __init__(
        self, input_size: int, hidden_size: int, eps: float = 1e-5, impl: str = "torch"
    ) -> None:
        super().__init__()
        if impl not in IMPLS:
            raise ConfigError(f"LayerNormRNN impl={impl!r} is unknown; choose one of {list(IMPLS)}")
        self.hidden_size, self.impl = hidden_size, impl
        bound = hidden_size**-0.5  # nn.RNN's default U(-1/sqrt(H), 1/sqrt(H))

        def uniform(*shape: int) -> nn.Parameter:
            return nn.Parameter(torch.empty(*shape).uniform_(-bound, bound))

        self.weight_ih_l0 = uniform(hidden_size, input_size)
        self.weight_hh_l0 = uniform(hidden_size, hidden_size)
        self.bias_ih_l0 = uniform(hidden_size)
        self.norm = nn.LayerNorm(hidden_size, eps=eps)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.impl == "fused":
            h = LayerNormRNNFunction.apply(
                x, self.weight_ih_l0, self.weight_hh_l0, self.bias_ih_l0,
                self.norm.weight, self.norm.bias, self.norm.eps,
            )  # fmt: skip
            return h, h[:, -1].unsqueeze(0)  # [B, T, H], [1, B, H]
        xw = x @ self.weight_ih_l0.T + self.bias_ih_l0  # [B, T, F] -> [B, T, H], all steps at once
        h = x.new_zeros(x.shape[0], self.hidden_size)  # [B, H]
        outs = []
        for t in range(x.shape[1]):
            h = torch.tanh(self.norm(xw[:, t] + h @ self.weight_hh_l0.T))  # [B, H]
            outs.append(h)
        return torch.stack(outs, dim=1), h.unsqueeze(0)  # [B, T, H], [1, B, H]


class LayerNormRNNStack(nn.Module):
    """Stacked :class:`LayerNormRNN` layers, all returning sequences: ``[B, T, F] -> [B, T, H]``.

    ``impl`` (``torch`` or ``fused``) is passed to every layer.
    """

    def __init__(self, n_features: int, hidden: list[int], impl: str = "torch") -> None:
        super().__init__()
        sizes = [n_features, *hidden]
        self.layers = nn.ModuleList(LayerNormRNN(a, b, impl=impl) for a, b in pairwise(sizes))
        self.out_features = sizes[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x, _ = layer(x)  # [B, T, H_in] -> [B, T, H_out]
        return x


class BatchNormRNNStack(nn.Module):
    """Simple RNN layers, each followed by ``BatchNorm1d`` (book cell 61).

    ``x [B, T, F] -> [B, T, H]``.

    BatchNorm normalises each unit over batch and time (Keras ``axis=-1``), so it runs on
    the channels-first view ``[B, H, T]``.
    """

    def __init__(self, n_features: int, hidden: list[int], impl: str = "torch") -> None:
        super().__init__()
        sizes = [n_features, *hidden]
        rnn = IMPLS[impl]["rnn"]
        self.layers = nn.ModuleList(rnn(a, b, batch_first=True) for a, b in pairwise(sizes))
        self.norms = nn.ModuleList(nn.BatchNorm1d(h) for h in hidden)
        self.out_features = sizes[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer, norm in zip(self.layers, self.norms, strict=True):
            x, _ = layer(x)  # [B, T, H_in] -> [B, T, H_out]
            x = norm(x.transpose(1, 2)).transpose(1, 2)  # normalised over (B, T) per unit
        return x

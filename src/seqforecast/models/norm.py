"""Scale-free inputs: normalise each window by its own statistics, invert it on the forecast.

:class:`WindowNorm` wraps any network of :func:`~seqforecast.models.build_net`. Each input
window ``x [B, T, F]`` is normalised feature by feature with statistics of that window alone,
the network runs on the normalised window, and its output is mapped back with the TARGET
feature's (feature 0's) statistics:

- ``last`` (NLinear, Zeng et al. 2023): subtract each feature's last value
  ``x[:, -1]``; the forecast gets the target's last value added back;
- ``revin`` (RevIN, Kim et al. 2022): ``(x - mean) / std`` per feature over the window's
  ``T`` steps (``std = sqrt(var + EPS)``, population variance), then, with ``affine``, a
  learnable ``* weight + bias`` per feature; the forecast is ``(y - bias_0) /
  (weight_0 + EPS) * std_0 + mean_0``.

Because the statistics are the window's own, a window shifted by a constant gives a forecast
shifted by that constant (``last``, ``revin``), and ``revin`` forecasts also scale with a
window multiplied by a positive constant (up to ``EPS``). Seq2seq outputs ``[B, T', k]`` are
inverted with the whole window's statistics at every step: the last step is the forecast;
earlier steps are training signals.

Outputs ``[..., k * P]`` of a probabilistic loss (``P`` values per step, see
:mod:`seqforecast.losses`) are inverted on their point entry (``point_index``: the median or
the mean, a location) only; the spread entries are multiplied by :meth:`WindowNorm.spread`
once the loss has made them a distribution (``dist(raw, spread)``).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from seqforecast.rules import WINDOW_NORMS

EPS = 1e-5
TARGET = 0  # the feature the nets forecast


class WindowNorm(nn.Module):
    """``net`` on windows normalised by their own statistics: ``x [B, T, F] -> [B, (T',) k * P]``.

    ``mode``: ``last`` or ``revin`` (``none`` is no wrapper at all, see
    :func:`seqforecast.models.build_net`). ``affine`` (``revin`` only) adds ``weight [F]``
    and ``bias [F]``. ``n_params`` and ``point_index``: the loss's values per forecast
    step and which of them is the location (``1`` and ``0`` for ``mse``).
    """

    def __init__(
        self,
        net: nn.Module,
        mode: str,
        n_features: int,
        affine: bool = True,
        n_params: int = 1,
        point_index: int = 0,
    ) -> None:
        super().__init__()
        if mode not in WINDOW_NORMS[1:]:
            raise ValueError(f"mode must be one of {list(WINDOW_NORMS[1:])}, got {mode!r}")
        self.net, self.mode = net, mode
        self.n_params, self.point_index = n_params, point_index
        self.affine = affine and mode == "revin"
        if self.affine:
            self.weight = nn.Parameter(torch.ones(n_features))
            self.bias = nn.Parameter(torch.zeros(n_features))

    def output_steps(self, n_steps: int) -> list[int]:
        """The wrapped net's seq2seq output steps (see :func:`seqforecast.models.output_steps`)."""
        steps = getattr(self.net, "output_steps", None)
        return list(range(n_steps)) if steps is None else steps(n_steps)

    def stats(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The window's location ``[B, 1, F]`` and (``revin``) spread ``[B, 1, F]``."""
        if self.mode == "last":
            return x[:, -1:], None  # [B, 1, F]
        var, mean = torch.var_mean(x, dim=1, keepdim=True, correction=0)  # [B, 1, F] each
        return mean, torch.sqrt(var + EPS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x [B, T, F] -> [B, (T',) k * P]``: the point entries in the data's units."""
        loc, std = self.stats(x)  # [B, 1, F]
        z = x - loc  # [B, T, F]
        if std is not None:
            z = z / std
        if self.affine:
            z = z * self.weight + self.bias
        raw = self.net(z)  # [B, (T',) k * P]
        shape = (-1,) + (1,) * raw.dim()  # [B] over [B, (T',) k, P]
        y = raw.unflatten(-1, (-1, self.n_params))  # [B, (T',) k, P]
        inv = y
        if self.affine:
            inv = (inv - self.bias[TARGET]) / (self.weight[TARGET] + EPS)
        if std is not None:
            inv = inv * std[:, 0, TARGET].reshape(shape)
        inv = inv + loc[:, 0, TARGET].reshape(shape)  # [B, (T',) k, P]
        if self.n_params > 1:  # only the location entry; spreads are scaled by spread()
            mask = torch.zeros(self.n_params, dtype=y.dtype, device=y.device)
            mask[self.point_index] = 1
            inv = y + (inv - y) * mask
        return inv.flatten(-2)  # [B, (T',) k * P]

    def spread(self, x: torch.Tensor, ndim: int) -> torch.Tensor | None:
        """The factor a distribution's spread is multiplied by, ``[B, 1, ..]`` with ``ndim``
        axes (that of ``dist``'s location ``[B, (T',) k]``); ``None`` for ``last``."""
        if self.mode == "last":
            return None
        _, std = self.stats(x)
        s = std[:, 0, TARGET]  # [B]
        if self.affine:
            s = s / (self.weight[TARGET] + EPS).abs()
        return s.reshape((-1,) + (1,) * (ndim - 1))


def wrap(
    net: nn.Module, mode: str, name: str, n_features: int, affine: bool, loss: Any
) -> nn.Module:
    """``net`` under ``model.window_norm=mode`` for the loss object ``loss`` (its
    ``n_params`` and ``point_index``): a :class:`WindowNorm`, or ``net`` itself for ``none``
    and for ``naive`` (the last value needs no normalising, and would gain parameters)."""
    if mode == "none" or name == "naive":
        return net
    return WindowNorm(net, mode, n_features, affine, loss.n_params, loss.point_index)


def net_outputs(net: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``net``'s raw outputs ``[B, (T',) k * P]`` and the factor that multiplies the
    distribution's spread (a ``revin`` :class:`WindowNorm`; else ``None``)."""
    raw = net(x)
    spread = net.spread(x, raw.dim()) if isinstance(net, WindowNorm) else None
    return raw, spread

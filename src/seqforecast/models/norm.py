"""Scale-free inputs: normalise each window by its own statistics, invert it on the forecast.

:class:`WindowNorm` wraps any network of :func:`~seqforecast.models.build_net`. Each input
window ``x [B, T, F]`` is normalised feature by feature with statistics of that window alone,
the network runs on the normalised window, and its output is mapped back with the TARGET
feature's (feature 0's) statistics:

- ``last`` (NLinear, Zeng et al. 2023): subtract each feature's last value
  ``x[:, -1]``; the forecast gets the target's last value added back;
- ``seasonal``: the inputs as ``last``; the forecast of step ``j = 1..k`` is the network's
  output plus the seasonal-naive forecast read from the raw window's target,
  ``x[:, T - 1 + j - m * ceil(j / m), 0]`` (``m = season``): the same point of the last
  observed season. The network's output enters times a learnable ``gate`` that starts at 0
  (as ReZero, Bachlechner et al. 2020), so an untrained model IS seasonal naive and training
  moves away from it only as far as the loss asks (at the optimizer's pace: a small series'
  few steps keep it near seasonal naive). With ``m = 1`` it is ``last`` plus that gate;
- ``revin`` (RevIN, Kim et al. 2022): ``(x - mean) / std`` per feature over the window's
  ``T`` steps (``std = sqrt(var + EPS)``, population variance), then, with ``affine``, a
  learnable ``* weight + bias`` per feature; the forecast is ``(y - bias_0) /
  (weight_0 + EPS) * std_0 + mean_0``.

Because the statistics are the window's own, a window shifted by a constant gives a forecast
shifted by that constant (every mode), and ``revin`` forecasts also scale with a window
multiplied by a positive constant (up to ``EPS``). Seq2seq outputs ``[B, T', k]`` are
inverted with the whole window's statistics at every step: the last step is the forecast;
earlier steps are training signals. ``seasonal`` adds to output step ``t`` (the input step it
ends at) the seasonal naive from ``t``, ``x[:, t + j - m * ceil(j / m), 0]``, the index
clamped at 0 where it falls before the window; the last step is the forecast above.

Outputs ``[..., k * P]`` of a probabilistic loss (``P`` values per step, see
:mod:`seqforecast.losses`) are inverted on their point entry (``point_index``: the median or
the mean, a location) only; the spread entries are multiplied by :meth:`WindowNorm.spread`
once the loss has made them a distribution (``dist(raw, spread)``).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from seqforecast.errors import ConfigError
from seqforecast.names import WINDOW_NORMS

EPS = 1e-5
TARGET = 0  # the feature the nets forecast


class WindowNorm(nn.Module):
    """``net`` on windows normalised by their own statistics: ``x [B, T, F] -> [B, (T',) k * P]``.

    ``mode``: ``last``, ``seasonal`` or ``revin`` (``none`` is no wrapper at all, see
    :func:`seqforecast.models.build_net`). ``affine`` (``revin`` only) adds ``weight [F]``
    and ``bias [F]``. ``n_params`` and ``point_index``: the loss's values per forecast
    step and which of them is the location (``1`` and ``0`` for ``mse``). ``season``
    (``seasonal`` only): the season length ``m >= 1`` in steps.
    """

    def __init__(
        self,
        net: nn.Module,
        mode: str,
        n_features: int,
        affine: bool = True,
        n_params: int = 1,
        point_index: int = 0,
        season: int = 1,
        gate: bool = True,
    ) -> None:
        super().__init__()
        if mode not in WINDOW_NORMS[1:]:
            raise ValueError(f"mode must be one of {list(WINDOW_NORMS[1:])}, got {mode!r}")
        self.net, self.mode = net, mode
        self.n_params, self.point_index = n_params, point_index
        if season < 1:
            raise ValueError(f"season must be >= 1, got {season!r}")
        self.season = season
        self.affine = affine and mode == "revin"
        self.gate = None
        if mode == "seasonal" and gate:  # starts at seasonal naive: the location enters times 0
            self.gate = nn.Parameter(torch.zeros(1))
        if self.affine:
            self.weight = nn.Parameter(torch.ones(n_features))
            self.bias = nn.Parameter(torch.zeros(n_features))

    def output_steps(self, n_steps: int) -> list[int]:
        """The wrapped net's seq2seq output steps (see :func:`seqforecast.models.output_steps`)."""
        steps = getattr(self.net, "output_steps", None)
        return list(range(n_steps)) if steps is None else steps(n_steps)

    def stats(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The window's location ``[B, 1, F]`` and (``revin``) spread ``[B, 1, F]``."""
        if self.mode in ("last", "seasonal"):
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
        y = raw.unflatten(-1, (-1, self.n_params))  # [B, (T',) k, P]
        mask = torch.zeros(self.n_params, dtype=y.dtype, device=y.device)
        mask[self.point_index] = 1  # the location entry
        if self.mode == "seasonal":
            if self.gate is not None:  # the location's correction times the gate
                y = y * (1 + (self.gate - 1) * mask)
            inv = y + self.seasonal_naive(x, y).unsqueeze(-1)  # [B, (T',) k, P]
        else:
            inv = self.invert(y, loc, std)
        if self.n_params > 1:  # only the location entry; spreads are scaled by spread()
            inv = y + (inv - y) * mask
        return inv.flatten(-2)  # [B, (T',) k * P]

    def invert(self, y: torch.Tensor, loc: torch.Tensor, std: torch.Tensor | None) -> torch.Tensor:
        """``last``, ``revin``: ``y [B, (T',) k, P]`` back in the data's units with the
        target's statistics ``loc, std [B, 1, F]`` (every entry; the caller keeps the
        location's)."""
        shape = (-1,) + (1,) * (y.dim() - 1)  # [B] over [B, (T',) k, P]
        inv = y
        if self.affine:
            inv = (inv - self.bias[TARGET]) / (self.weight[TARGET] + EPS)
        if std is not None:
            inv = inv * std[:, 0, TARGET].reshape(shape)
        return inv + loc[:, 0, TARGET].reshape(shape)  # [B, (T',) k, P]

    def seasonal_naive(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The seasonal-naive forecast of the target for the outputs ``y [B, (T',) k, P]``:
        ``[B, k]`` after the window, or ``[B, T', k]`` after each output step.

        Step ``j`` after input step ``t`` repeats ``x[:, t + j - m * ceil(j / m), 0]``, which
        is ``(j - 1) % m`` steps into the season that ends at ``t``. The target is padded in
        front with ``m - 1`` copies of its first value (the clamp at 0), so the indices are
        relative to the window's ends: none depends on the window's length, and an exported
        graph with a dynamic time axis stays right. A net with fewer output steps than inputs
        (``output_steps``) has them evenly spaced, as the strided convolutions do.
        """
        m, k = self.season, y.shape[-2]
        s = x[..., TARGET]  # [B, T]
        if m > 1:
            s = torch.cat([s[:, :1].expand(-1, m - 1), s], dim=1)  # [B, m - 1 + T]
        if y.dim() == 3:  # [B, k, P]: after the whole window
            phase = torch.arange(k, device=x.device) % m  # [k]: (j - 1) % m
            return s[:, -m:].index_select(1, phase)  # [B, m] -> [B, k]
        # Step j after each input step: the padded target (j - 1) % m steps further, a slice
        # whose ends are fixed relative to both ends of the window.
        phases = [j % m for j in range(k)]
        naive = torch.stack([s[:, p : p - m + 1 or None] for p in phases], dim=-1)  # [B, T, k]
        steps = self.output_steps(x.shape[1])  # ints: start, start + stride, ..
        start, stride = steps[0], steps[1] - steps[0] if len(steps) > 1 else 1
        if (start, stride) != (0, 1):  # a strided net's fewer outputs
            naive = naive[:, start::stride]  # [B, T', k]
        return naive

    def spread(self, x: torch.Tensor, ndim: int) -> torch.Tensor | None:
        """The factor a distribution's spread is multiplied by, ``[B, 1, ..]`` with ``ndim``
        axes (that of ``dist``'s location ``[B, (T',) k]``); ``None`` for ``last`` and
        ``seasonal`` (a shift only)."""
        if self.mode != "revin":
            return None
        _, std = self.stats(x)
        s = std[:, 0, TARGET]  # [B]
        if self.affine:
            s = s / (self.weight[TARGET] + EPS).abs()
        return s.reshape((-1,) + (1,) * (ndim - 1))


def wrap(
    net: nn.Module, mode: str, name: str, n_features: int, affine: bool, loss: Any, season: int = 1
) -> nn.Module:
    """``net`` under ``model.window_norm=mode`` for the loss object ``loss`` (its
    ``n_params`` and ``point_index``): a :class:`WindowNorm`, or ``net`` itself for ``none``
    and for ``naive`` under ``last``/``revin`` (the last value needs no normalising, and
    would gain parameters). ``naive`` under ``seasonal`` outputs zero on the shifted window:
    it is the seasonal-naive forecast itself."""
    if mode == "none" or (name == "naive" and mode != "seasonal"):
        return net
    if name == "naive" and getattr(net, "per_step", False):
        raise ConfigError(
            "model.window_norm=seasonal with model.net=naive needs target=next: the per-step "
            "naive repeats each input step, not zero, so it would not be seasonal naive"
        )
    gate = name != "naive"  # the naive net outputs zero: nothing to gate, nothing to train
    return WindowNorm(net, mode, n_features, affine, loss.n_params, loss.point_index, season, gate)


def net_outputs(net: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``net``'s raw outputs ``[B, (T',) k * P]`` and the factor that multiplies the
    distribution's spread (a ``revin`` :class:`WindowNorm`; else ``None``)."""
    raw = net(x)
    spread = net.spread(x, raw.dim()) if isinstance(net, WindowNorm) else None
    return raw, spread

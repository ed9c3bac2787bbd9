"""Probabilistic losses: quantile (pinball) regression and the Gaussian likelihood, in torch.

A forecaster trained with one of these emits ``P`` raw values per forecast step (``P = Q``
quantiles, or ``2`` for the Gaussian's mean and scale) instead of one: the network's last layer
is simply ``P`` times wider, ``[..., k * P]``, viewed as ``[..., k, P]``. A
:class:`DistributionLoss` turns those raw values into a distribution (``dist [..., k, P]``),
scores it against targets ``y [..., k]``, and reads its point forecast and its quantiles.
:class:`PointLoss` (``mse``) has the same interface for a plain point forecast, so the
module calls one object whatever its loss.

- :class:`QuantileLoss`: ``dist`` holds the quantiles at ``levels``, which never cross: the
  median (level 0.5) is a raw output, and each level away from it adds (above) or subtracts
  (below) a ``softplus`` of its own raw output. Anchoring at the median keeps the point
  forecast a plain linear output, as in the ``mse`` model, whatever the spread does.
- :class:`GaussianLoss`: ``dist[..., 0]`` is the mean, ``dist[..., 1]`` the scale
  ``softplus(raw) + SCALE_EPS`` (positive, never 0, so the likelihood stays finite).

The numpy scores of :mod:`seqforecast.scores` (``pinball``, ``crps_from_quantiles``) are the
reference these follow; the torch versions here keep the graph for training.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics import MeanMetric

from seqforecast.errors import ConfigError
from seqforecast.models import STACKS
from seqforecast.rules import check

# The levels a model forecasts and is scored at when model.quantiles is null.
DEFAULT_LEVELS = {"quantile": (0.1, 0.5, 0.9), "gaussian": (0.025, 0.1, 0.5, 0.9, 0.975)}
SCALE_EPS = 1e-4  # the smallest Gaussian scale
LOG_2PI = math.log(2 * math.pi)


def pinball_loss(q: torch.Tensor, y: torch.Tensor, levels: torch.Tensor) -> torch.Tensor:
    """Pinball loss of quantiles ``q [..., Q]`` at ``levels [Q]`` for ``y [...]``, averaged
    over the levels: ``[...]``. ``max(tau (y - q), (tau - 1) (y - q))`` per level."""
    diff = y.unsqueeze(-1) - q  # [..., Q]
    return torch.maximum(levels * diff, (levels - 1) * diff).mean(-1)


def monotone_quantiles(raw: torch.Tensor, median: int) -> torch.Tensor:
    """Raw outputs ``[..., Q]`` -> non-decreasing quantiles ``[..., Q]``.

    ``raw[..., median]`` is the median itself; the ``i``-th level above it is the median plus
    ``softplus`` of the raw outputs of levels ``median + 1 .. i`` (below: minus, mirrored).
    """
    mid = raw[..., median : median + 1]  # [..., 1]
    up = F.softplus(raw[..., median + 1 :]).cumsum(-1)  # [..., Q_above]
    down = F.softplus(raw[..., :median].flip(-1)).cumsum(-1).flip(-1)  # [..., Q_below]
    return torch.cat([mid - down, mid, mid + up], dim=-1)


def gaussian_nll(mean: torch.Tensor, scale: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Negative log-likelihood of ``y`` under ``N(mean, scale^2)``, elementwise (constant
    included): ``log scale + (y - mean)^2 / (2 scale^2) + log(2 pi) / 2``."""
    z = (y - mean) / scale
    return scale.log() + 0.5 * z.square() + 0.5 * LOG_2PI


def gaussian_crps(mean: torch.Tensor, scale: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Closed-form CRPS of ``N(mean, scale^2)`` at ``y``, elementwise:
    ``scale (z (2 Phi(z) - 1) + 2 phi(z) - 1 / sqrt(pi))`` with ``z = (y - mean) / scale``."""
    z = (y - mean) / scale
    pdf = torch.exp(-0.5 * z.square()) / math.sqrt(2 * math.pi)
    return scale * (z * (2 * torch.special.ndtr(z) - 1) + 2 * pdf - 1 / math.sqrt(math.pi))


def gaussian_quantiles(
    mean: torch.Tensor, scale: torch.Tensor, levels: torch.Tensor
) -> torch.Tensor:
    """Quantiles of ``N(mean, scale^2)`` at ``levels [Q]``: ``[...] -> [..., Q]``."""
    return mean.unsqueeze(-1) + scale.unsqueeze(-1) * torch.special.ndtri(levels)


def interval_pairs(levels: Sequence[float]) -> list[tuple[int, int, float]]:
    """``(lo index, hi index, level in percent)`` of each central interval the levels bound:
    every symmetric pair ``(a, 1 - a)``, e.g. ``[0.1, 0.5, 0.9] -> [(0, 2, 80.0)]``."""
    pairs = []
    for i, a in enumerate(levels):
        j = len(levels) - 1 - i
        if a < 0.5 and abs(a + levels[j] - 1) < 1e-9:
            pairs.append((i, j, round((1 - 2 * a) * 100, 6)))
    return pairs


class PointLoss(nn.Module):
    """``mse``: one raw value per forecast step, the point forecast itself. No parameters,
    buffers or scores: an ``mse`` model computes, and saves, exactly what it always did."""

    n_params, point_index = 1, 0
    level_list = None
    score_names: tuple[str, ...] = ()

    def point(self, raw: torch.Tensor) -> torch.Tensor:
        return raw  # [..., k]

    def dist(self, raw: torch.Tensor, spread: torch.Tensor | None = None) -> torch.Tensor:
        return raw.unsqueeze(-1)  # [..., k] -> [..., k, 1]: a point mass

    def loss(self, dist: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.mse_loss(dist[..., 0], y)

    def quantiles(self, dist: torch.Tensor, levels: Sequence[float] | None = None) -> torch.Tensor:
        raise ConfigError(
            "model.loss=mse forecasts points only: quantiles need model.loss=quantile or gaussian"
        )

    def update_scores(self, stage: str, dist: torch.Tensor, y: torch.Tensor) -> None:
        pass

    def stage_means(self, stage: str) -> list[tuple[str, MeanMetric]]:
        return []


class DistributionLoss(nn.Module):
    """What a probabilistic loss shares: its ``levels``, and its scores with one running
    mean per score and evaluation stage (torchmetrics ``MeanMetric``: sum and count states,
    summed across processes under DDP). Neither the levels nor the means are saved: a
    model's state_dict holds only its network."""

    n_params: int  # raw values per forecast step
    point_index: int  # the entry of dist that is the point forecast

    def __init__(self, levels: Sequence[float], stages: Sequence[str] = ()) -> None:
        super().__init__()
        self.level_list = [float(a) for a in levels]
        self.register_buffer("levels", torch.tensor(self.level_list), persistent=False)
        self.pairs = interval_pairs(self.level_list)  # the central intervals scored
        self.score_names = ["pinball", "crps", *(f"coverage-{p[2]:g}" for p in self.pairs)]
        self.means = nn.ModuleDict(
            {s: nn.ModuleList(MeanMetric() for _ in self.score_names) for s in stages}
        )

    def dist(self, raw: torch.Tensor, spread: torch.Tensor | None = None) -> torch.Tensor:
        """Raw outputs ``[..., k * P]`` -> the distribution ``[..., k, P]`` (float32).

        ``spread`` (broadcastable to ``[..., k]``; see :class:`seqforecast.models.norm.WindowNorm`)
        multiplies the distances of the quantiles from the median, or the Gaussian's scale."""
        raise NotImplementedError

    def loss(self, dist: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Mean training loss of ``dist [..., k, P]`` for ``y [..., k]``: a scalar."""
        raise NotImplementedError

    def quantiles(self, dist: torch.Tensor, levels: Sequence[float] | None = None) -> torch.Tensor:
        """Quantiles ``[..., k, Q]`` at ``levels`` (default: the model's own)."""
        raise NotImplementedError

    def crps(self, dist: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """CRPS per target, ``[..., k]``."""
        raise NotImplementedError

    def point(self, raw: torch.Tensor) -> torch.Tensor:
        """The point forecast straight from raw outputs: ``[..., k * P] -> [..., k]``."""
        return raw.unflatten(-1, (-1, self.n_params))[..., self.point_index]

    def scores(self, dist: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        """Per-target ``pinball``, ``crps`` and ``coverage-<L>`` (0 or 100) of each central
        interval the levels bound, each ``[..., k]``."""
        q = self.quantiles(dist)  # [..., k, Q]
        out = {"pinball": pinball_loss(q, y, self.levels), "crps": self.crps(dist, y)}
        for lo, hi, level in self.pairs:
            inside = (y >= q[..., lo]) & (y <= q[..., hi])
            out[f"coverage-{level:g}"] = inside.float() * 100
        return out

    def update_scores(self, stage: str, dist: torch.Tensor, y: torch.Tensor) -> None:
        """Add the :meth:`scores` of ``dist [B, k, P]`` for ``y [B, k]`` to ``stage``'s means."""
        for mean, value in zip(self.means[stage], self.scores(dist, y).values(), strict=True):
            mean.update(value)

    def stage_means(self, stage: str) -> list[tuple[str, MeanMetric]]:
        """``(score name, running mean)`` of ``stage``, for ``LightningModule.log``."""
        return list(zip(self.score_names, self.means[stage], strict=True))


class QuantileLoss(DistributionLoss):
    """Pinball loss over ``levels`` (strictly increasing in (0, 1), 0.5 among them), with
    non-crossing quantiles; the median is the point forecast."""

    def __init__(self, levels: Sequence[float], stages: Sequence[str] = ()) -> None:
        super().__init__(levels, stages)
        self.n_params = len(self.level_list)
        self.point_index = self.level_list.index(0.5)

    def dist(self, raw: torch.Tensor, spread: torch.Tensor | None = None) -> torch.Tensor:
        raw = raw.float().unflatten(-1, (-1, self.n_params))  # [..., k * Q] -> [..., k, Q]
        q = monotone_quantiles(raw, self.point_index)
        if spread is None:
            return q
        mid = q[..., self.point_index : self.point_index + 1]  # [..., k, 1]
        return mid + (q - mid) * spread.float().unsqueeze(-1)

    def loss(self, dist: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return pinball_loss(dist, y.float(), self.levels).mean()

    def quantiles(self, dist: torch.Tensor, levels: Sequence[float] | None = None) -> torch.Tensor:
        if levels is None:
            return dist
        missing = [a for a in levels if a not in self.level_list]
        if missing:
            raise ConfigError(
                f"quantiles={list(levels)}: a quantile model forecasts only the levels it was "
                f"trained for, model.quantiles={self.level_list} ({missing} are not among them)"
            )
        return dist[..., [self.level_list.index(a) for a in levels]]

    def crps(self, dist: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        # As scores.crps_from_quantiles: twice the pinball loss averaged over the levels.
        return 2 * pinball_loss(dist, y.float(), self.levels)


class GaussianLoss(DistributionLoss):
    """Gaussian negative log-likelihood; ``dist [..., k, 2]`` is (mean, scale), the mean is
    the point forecast; ``levels`` are the quantiles it is scored (and by default read) at."""

    n_params, point_index = 2, 0

    def dist(self, raw: torch.Tensor, spread: torch.Tensor | None = None) -> torch.Tensor:
        raw = raw.float().unflatten(-1, (-1, 2))  # [..., k * 2] -> [..., k, 2]
        scale = F.softplus(raw[..., 1]) + SCALE_EPS
        if spread is not None:
            scale = scale * spread.float()
        return torch.stack([raw[..., 0], scale], dim=-1)

    def loss(self, dist: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return gaussian_nll(dist[..., 0], dist[..., 1], y.float()).mean()

    def quantiles(self, dist: torch.Tensor, levels: Sequence[float] | None = None) -> torch.Tensor:
        at = self.levels if levels is None else dist.new_tensor(list(levels))
        return gaussian_quantiles(dist[..., 0], dist[..., 1], at)

    def crps(self, dist: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return gaussian_crps(dist[..., 0], dist[..., 1], y.float())


def build_loss(
    loss: str, quantiles: Sequence[float] | None, net: str, head: str, stages: Sequence[str] = ()
) -> PointLoss | DistributionLoss:
    """The loss named ``loss``: :class:`PointLoss` for ``mse``, else a distribution loss at
    ``quantiles`` (``None``: :data:`DEFAULT_LEVELS`) with running scores for ``stages``.

    Each value is checked by its rule (:mod:`seqforecast.rules`); a net without a trained
    output layer to size for the distribution (``net``, ``head`` as in
    :func:`~seqforecast.models.build_net`) is refused.
    """
    check("model.loss", loss)
    check("model.quantiles", quantiles)
    if loss == "mse":
        return PointLoss()
    if net == "naive":
        raise ConfigError(
            f"model.loss={loss} needs a trained output layer; model.net=naive (the naive "
            "baseline) has nothing to train: use model.loss=mse"
        )
    if net in STACKS and head == "none":
        raise ConfigError(
            f"model.loss={loss} needs an output layer sized for it; model.head=none (as in "
            "simple_rnn, deep_rnn) makes the RNN state the forecast: use model.head=linear "
            "(deep_rnn_dense) or per_step, or model.loss=mse"
        )
    levels = DEFAULT_LEVELS[loss] if quantiles is None else quantiles
    return (QuantileLoss if loss == "quantile" else GaussianLoss)(levels, stages)

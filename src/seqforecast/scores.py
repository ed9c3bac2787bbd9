"""Forecast scores in numpy: point errors, interval scores, quantile scores, conformal widths.

Arrays broadcast: ``y`` and forecasts ``[N, k]`` (``N`` windows or origins, ``k`` steps
ahead), interval bounds the same shape, quantile forecasts ``[..., Q]`` beside ``quantiles
[Q]``. Every score is averaged in float64. Interval levels are percentages in (0, 100), as
in ``levels=[80, 95]`` and the ``lo-80``/``hi-80`` column names.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence

import numpy as np

from seqforecast.errors import ConfigError

log = logging.getLogger(__name__)


def _f64(a: np.ndarray) -> np.ndarray:
    return np.asarray(a, dtype=np.float64)


def mae(y: np.ndarray, forecast: np.ndarray) -> float:
    """Mean absolute error.

    Args:
        y: Actual values ``[N, k]`` (any shape that broadcasts with ``forecast``).
        forecast: Point forecasts, the same shape.

    Returns:
        ``mean |y - forecast|``.
    """
    return float(np.mean(np.abs(_f64(y) - _f64(forecast))))


def rmse(y: np.ndarray, forecast: np.ndarray) -> float:
    """Root mean squared error.

    Args:
        y: Actual values ``[N, k]`` (any shape that broadcasts with ``forecast``).
        forecast: Point forecasts, the same shape.

    Returns:
        ``sqrt(mean (y - forecast)^2)``.
    """
    return float(np.sqrt(np.mean((_f64(y) - _f64(forecast)) ** 2)))


def smape(y: np.ndarray, forecast: np.ndarray) -> float:
    """Symmetric MAPE in percent, ``200 |y - f| / (|y| + |f|)``; a term with ``y = f = 0`` is 0.

    Args:
        y: Actual values ``[N, k]`` (any shape that broadcasts with ``forecast``).
        forecast: Point forecasts, the same shape.

    Returns:
        The mean of the terms, from 0 to 200.
    """
    y, f = _f64(y), _f64(forecast)
    denom = np.abs(y) + np.abs(f)
    terms = np.divide(200.0 * np.abs(y - f), denom, out=np.zeros_like(denom), where=denom > 0)
    return float(np.mean(terms))


def seasonal_naive_mae(history: np.ndarray, season: int = 1) -> float:
    """In-sample MAE of the seasonal-naive forecast ``y[t - season]`` over ``history [T]``:
    the scale of MASE.

    Args:
        history: The in-sample values ``[T]`` (flattened), e.g. the training rows.
        season: The season length ``m``, ``1 <= m < T`` (1: the naive forecast).

    Returns:
        ``mean |history[t] - history[t - m]|``.

    Raises:
        ConfigError: ``season`` is not an integer from 1 to ``T - 1``.
    """
    history = _f64(history).reshape(-1)
    if not isinstance(season, int) or season < 1 or season >= len(history):
        raise ConfigError(
            f"season_length={season!r} must be an integer from 1 to {len(history) - 1} "
            f"(shorter than the {len(history)} training rows)"
        )
    return float(np.mean(np.abs(history[season:] - history[:-season])))


def mase(y: np.ndarray, forecast: np.ndarray, history: np.ndarray, season: int = 1) -> float:
    """Mean absolute scaled error: MAE over the in-sample seasonal-naive MAE of ``history``.

    Args:
        y: Actual values ``[N, k]`` (any shape that broadcasts with ``forecast``).
        forecast: Point forecasts, the same shape.
        history: The in-sample values ``[T]`` that give the scale.
        season: The season length of the scale (:func:`seasonal_naive_mae`).

    Returns:
        ``mae(y, forecast) / seasonal_naive_mae(history, season)``; ``inf`` when the scale is 0.

    Raises:
        ConfigError: ``season`` is not an integer from 1 to ``T - 1``.
    """
    scale = seasonal_naive_mae(history, season)
    return mae(y, forecast) / scale if scale > 0 else math.inf


def level_name(level: float) -> str:
    """``80 -> "80"``, ``97.5 -> "97.5"``: the suffix of the ``lo-80``/``hi-80`` columns.

    Args:
        level: An interval level in percent.

    Returns:
        The level in ``%g`` format.
    """
    return f"{level:g}"


def coverage(y: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> float:
    """Share of ``y`` inside ``[lo, hi]``, in percent.

    Args:
        y: Actual values ``[N, k]``.
        lo: Lower bounds, the same shape.
        hi: Upper bounds, the same shape.

    Returns:
        From 0 to 100.
    """
    y = _f64(y)
    return float(np.mean((y >= lo) & (y <= hi)) * 100.0)


def winkler(y: np.ndarray, lo: np.ndarray, hi: np.ndarray, level: float) -> float:
    """Mean interval (Winkler) score of ``[lo, hi]`` at ``level`` percent: the width, plus
    ``2 / alpha`` times the distance by which ``y`` falls outside (``alpha = 1 - level/100``).

    Args:
        y: Actual values ``[N, k]``.
        lo: Lower bounds, the same shape.
        hi: Upper bounds, the same shape.
        level: The interval's level in percent, in (0, 100).

    Returns:
        The mean score, in the units of ``y`` (lower is better).
    """
    y, lo, hi = _f64(y), _f64(lo), _f64(hi)
    alpha = 1.0 - level / 100.0
    below = np.maximum(lo - y, 0.0)
    above = np.maximum(y - hi, 0.0)
    return float(np.mean((hi - lo) + (2.0 / alpha) * (below + above)))


def interval_scores(
    y: np.ndarray, bounds: dict[float, tuple[np.ndarray, np.ndarray]]
) -> dict[str, float]:
    """``coverage-80``, ``width-80`` and ``winkler-80`` (and so on) for ``{level: (lo, hi)}``.

    Args:
        y: Actual values ``[N, k]``.
        bounds: Level in percent -> ``(lo, hi)``, each shaped as ``y``.

    Returns:
        Three scores per level, named ``<score>-<level>``.
    """
    out = {}
    for level, (lo, hi) in bounds.items():
        name = level_name(level)
        out[f"coverage-{name}"] = coverage(y, lo, hi)
        out[f"width-{name}"] = float(np.mean(_f64(hi) - _f64(lo)))
        out[f"winkler-{name}"] = winkler(y, lo, hi, level)
    return out


def conformal_rank(n: int, level: float) -> int:
    """The rank of the finite-sample quantile at ``level`` among ``n`` values (1 = the
    smallest): ``ceil((n + 1) level / 100)``; above ``n`` when ``n`` is too small for the level.

    Args:
        n: The number of calibration values.
        level: The level in percent.

    Returns:
        The 1-based rank.
    """
    return math.ceil((n + 1) * level / 100.0)


def too_few(n: int, level: float, shape: tuple[int, ...]) -> np.ndarray:
    """The infinite bound of a level that ``n`` calibration values cannot give, with a warning.

    Args:
        n: The number of calibration values.
        level: The level in percent.
        shape: The shape of the bound.

    Returns:
        ``inf`` of ``shape``.
    """
    log.warning(
        f"level {level:g}: {n} calibration values are too few for a finite interval "
        f"(at least {math.ceil(level / (100 - level))} needed); its bounds are infinite"
    )
    return np.full(shape, np.inf)


def order_statistic(values: np.ndarray, level: float) -> np.ndarray:
    """Per column of ``values [N, k]`` (signed), the :func:`conformal_rank`-th smallest:
    ``[k]``; ``inf`` when ``N`` is too small for the level.

    Args:
        values: Calibration values ``[N, k]``.
        level: The level in percent.

    Returns:
        float64 ``[k]``.
    """
    v = np.sort(_f64(values), axis=0)
    rank = conformal_rank(len(v), level)
    return v[rank - 1] if rank <= len(v) else too_few(len(v), level, v.shape[1:])


def conformal_width(residuals: np.ndarray, level: float) -> np.ndarray:
    """Split-conformal half-widths per column of ``residuals [N, k]`` (calibration errors
    ``y - f`` per step ahead): the :func:`order_statistic` of their absolute values, so a new
    error falls within it with probability at least ``level`` percent.

    Args:
        residuals: Calibration errors ``[N, k]``.
        level: The level in percent.

    Returns:
        float64 half-widths ``[k]``; ``inf`` when ``N`` is too small for the level.
    """
    return order_statistic(np.abs(_f64(residuals)), level)


def pinball(y: np.ndarray, q_forecast: np.ndarray, quantiles: Sequence[float]) -> float:
    """Mean pinball (quantile) loss of ``q_forecast [..., Q]`` for ``y [...]``.

    Args:
        y: Actual values ``[...]``.
        q_forecast: Quantile forecasts ``[..., Q]``.
        quantiles: The levels ``[Q]``, in (0, 1).

    Returns:
        The loss averaged over values and levels.
    """
    tau = _f64(quantiles)
    diff = _f64(y)[..., np.newaxis] - _f64(q_forecast)  # [..., Q]
    return float(np.mean(np.maximum(tau * diff, (tau - 1.0) * diff)))


def crps_from_quantiles(y: np.ndarray, q_forecast: np.ndarray, quantiles: Sequence[float]) -> float:
    """CRPS approximated from quantile forecasts: twice the pinball loss averaged over the
    quantile levels (exact in the limit of a uniform grid of levels).

    Args:
        y: Actual values ``[...]``.
        q_forecast: Quantile forecasts ``[..., Q]``.
        quantiles: The levels ``[Q]``, in (0, 1).

    Returns:
        ``2 * pinball(y, q_forecast, quantiles)``.
    """
    return 2.0 * pinball(y, q_forecast, quantiles)

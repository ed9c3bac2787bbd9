"""Baseline forecasts from every origin at once: naive, seasonal naive, drift (numpy), plus
the statistical models of :mod:`.statistical`, behind one registry.

Each baseline maps the target series ``y [R]`` (data units), cutoff rows ``[n]`` and a
horizon ``h`` to forecasts ``[n, h]`` that read only ``y[: c + 1]`` for origin ``c``.
Formulas (``T = c``, the last known row; ``j = 1..h``; ``m`` the season length):

- ``naive``: ``y[T]``.
- ``seasonal_naive``: ``y[T + j - m * (floor((j - 1) / m) + 1)]``, the same point of the
  last observed season.
- ``drift``: ``y[T] + j * (y[T] - y[0]) / T``, the line through the first and last rows.
"""

from __future__ import annotations

import numpy as np

from seqforecast.backtest.statistical import statistical_forecasts
from seqforecast.names import BASELINES as BASELINES  # re-exported: the rule of baselines


def naive(y: np.ndarray, cutoffs: np.ndarray, horizon: int, season: int = 1) -> np.ndarray:
    """The last known value, repeated: ``[n, h]``."""
    return np.repeat(np.asarray(y, np.float64)[cutoffs][:, np.newaxis], horizon, axis=1)


def seasonal_naive(y: np.ndarray, cutoffs: np.ndarray, horizon: int, season: int) -> np.ndarray:
    """The value one season before each target, from the last observed season: ``[n, h]``."""
    j = np.arange(1, horizon + 1)  # [h]
    lag = season * ((j - 1) // season + 1)  # [h], >= j: always a known row
    return np.asarray(y, np.float64)[cutoffs[:, np.newaxis] + j - lag]  # [n, h]


def drift(y: np.ndarray, cutoffs: np.ndarray, horizon: int, season: int = 1) -> np.ndarray:
    """The last value plus ``j`` times the average step of the history: ``[n, h]``."""
    y = np.asarray(y, np.float64)
    last = y[cutoffs]  # [n]
    slope = (last - y[0]) / cutoffs  # [n]; cutoffs >= 1 (checked by the caller)
    return last[:, np.newaxis] + slope[:, np.newaxis] * np.arange(1, horizon + 1)  # [n, h]


NUMPY_BASELINES = {"naive": naive, "seasonal_naive": seasonal_naive, "drift": drift}


def baseline_forecasts(
    name: str,
    y: np.ndarray,
    cutoffs: np.ndarray,
    horizon: int,
    season: int,
    fit_rows: np.ndarray,
) -> np.ndarray:
    """Forecasts ``[n, h]`` of baseline ``name`` from each cutoff of ``y [R]``.

    ``fit_rows [n]``: the rows a statistical model is fitted on for each origin (its
    parameters; the numpy baselines have none and ignore it).
    """
    if name in NUMPY_BASELINES:
        return NUMPY_BASELINES[name](y, cutoffs, horizon, season)
    return statistical_forecasts(name, y, cutoffs, horizon, season, fit_rows)

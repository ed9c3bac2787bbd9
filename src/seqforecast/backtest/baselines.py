"""Baseline forecasts from every origin at once: naive, seasonal naive, drift (numpy), plus
the statistical models of :mod:`.statistical` fitted once and run forward, behind one registry.

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

from seqforecast.backtest.statistical import fitted_model, statistical_model
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
) -> tuple[np.ndarray, str | None]:
    """Forecasts ``[n, h]`` of baseline ``name`` from each cutoff of ``y [R]``, and the
    statistical model it fitted (``"ETS(A,N,N)"``; ``None`` for the numpy baselines).

    ``fit_rows [n]``: the rows a statistical model is fitted on for each origin (its
    parameters; the numpy baselines have none and ignore it). Consecutive origins that share
    ``fit_rows`` share one fit, which then forecasts from each origin ``c`` through the
    library's ``forward(y[: c + 1], h)``: the fitted model run over the history up to the
    origin, not re-estimated (statsforecast's ``cross_validation`` with ``refit`` = N).
    """
    if name in NUMPY_BASELINES:
        return NUMPY_BASELINES[name](y, cutoffs, horizon, season), None
    y = np.asarray(y, np.float64)
    out = np.empty((len(cutoffs), horizon))
    model, fitted_on, fitted = None, None, {}
    for i, (c, rows) in enumerate(zip(cutoffs, fit_rows, strict=True)):
        if rows != fitted_on:
            model, fitted_on = statistical_model(name, season).fit(y[:rows]), rows
            fitted[fitted_model(model)] = None
        out[i] = model.forward(y=y[: c + 1], h=horizon)["mean"]
    return out, " / ".join(fitted)

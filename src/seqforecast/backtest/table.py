"""Conformal intervals, the long table of forecasts, and the metrics per model and step ahead.

Every model, baselines included, is scored the same way from three arrays of one span of
origins: ``actual [n, h]``, ``forecast [n, h]`` (data units) and interval bounds per level.
Intervals are split-conformal per step ahead: the half-width of step ``j`` at level ``L``
is :func:`seqforecast.scores.conformal_width` of the model's absolute errors at step ``j``
over the calibration origins (the val span, forecast the same way).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from seqforecast import scores

Bounds = dict[float, tuple[np.ndarray, np.ndarray]]


def conformal_bounds(
    cal_actual: np.ndarray, cal_forecast: np.ndarray, forecast: np.ndarray, levels: Sequence[float]
) -> Bounds:
    """``{level: (lo, hi)}``, each ``[n, h]``: ``forecast`` plus and minus the conformal
    half-width of each step, from calibration errors ``cal_actual - cal_forecast [m, h]``."""
    residuals = np.abs(np.asarray(cal_actual, np.float64) - cal_forecast)  # [m, h]
    out = {}
    for level in levels:
        width = scores.conformal_width(residuals, level)  # [h]
        out[level] = (forecast - width, forecast + width)
    return out


def long_table(
    model: str,
    origins: np.ndarray,
    times: np.ndarray,
    actual: np.ndarray,
    forecast: np.ndarray,
    bounds: Bounds,
) -> pd.DataFrame:
    """One row per origin and step ahead: ``model, origin, step, time, actual, forecast,
    lo-L, hi-L`` per level. ``origins [n]`` label the cutoff rows, ``times [n, h]`` the
    targets (timestamps, or row numbers without a time column)."""
    n, h = forecast.shape
    columns: dict[str, Any] = {
        "model": model,
        "origin": np.repeat(origins, h),
        "step": np.tile(np.arange(1, h + 1), n),
        "time": np.asarray(times).reshape(-1),
        "actual": actual.reshape(-1),
        "forecast": forecast.reshape(-1),
    }
    for level, (lo, hi) in bounds.items():
        name = scores.level_name(level)
        columns[f"lo-{name}"] = lo.reshape(-1)
        columns[f"hi-{name}"] = hi.reshape(-1)
    return pd.DataFrame(columns)


def _scores(
    actual: np.ndarray, forecast: np.ndarray, bounds: Bounds, history: np.ndarray, season: int
) -> dict[str, float]:
    return {
        "mae": scores.mae(actual, forecast),
        "rmse": scores.rmse(actual, forecast),
        "mase": scores.mase(actual, forecast, history, season),
        "smape": scores.smape(actual, forecast),
        **scores.interval_scores(actual, bounds),
    }


def model_metrics(
    actual: np.ndarray, forecast: np.ndarray, bounds: Bounds, history: np.ndarray, season: int
) -> dict[str, Any]:
    """``{"overall": {...}, "per_step": [{...}, ...]}``: MAE, RMSE, MASE (scaled by the
    seasonal-naive MAE of ``history``, the training rows), sMAPE and, per level, coverage,
    width and Winkler score, over all ``[n, h]`` forecasts and for each step ahead."""
    per_step = [
        {
            "step": j + 1,
            **_scores(
                actual[:, j],
                forecast[:, j],
                {lv: (lo[:, j], hi[:, j]) for lv, (lo, hi) in bounds.items()},
                history,
                season,
            ),
        }
        for j in range(forecast.shape[1])
    ]
    return {"overall": _scores(actual, forecast, bounds, history, season), "per_step": per_step}


def metrics_frame(metrics: dict[str, dict[str, Any]]) -> pd.DataFrame:
    """``metrics.csv``: one row per model and step ahead, then its overall row (``step`` all)."""
    rows = []
    for model, m in metrics.items():
        rows += [{"model": model, **s} for s in m["per_step"]]
        rows.append({"model": model, "step": "all", **m["overall"]})
    return pd.DataFrame(rows)


def format_metrics(metrics: dict[str, dict[str, Any]]) -> str:
    """The overall row of each model as a text table for the terminal."""
    names = list(next(iter(metrics.values()))["overall"])
    rows = [["model", *names]]
    rows += [[model, *(f"{m['overall'][k]:.4f}" for k in names)] for model, m in metrics.items()]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = [
        "  ".join(
            c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True))
        )
        for r in rows
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)

"""Conformal intervals, the long table of forecasts, and its scores by ``utilsforecast``.

The table is statsforecast's ``cross_validation`` format: one row per series, origin and
step ahead, ``unique_id, ds, cutoff, y``, then per model ``<model>``, ``<model>-lo-<L>``
(widest level first) and ``<model>-hi-<L>``. It is scored by
``utilsforecast.evaluation.evaluate`` (MAE, RMSE, MASE against the training rows, sMAPE,
per level coverage and Winkler score, and the scaled CRPS of the bounds as quantiles), per
series over every origin and step (``step`` all) and per series and step ahead.

Intervals are split-conformal per step ahead: the half-width of step ``j`` at level ``L``
is :func:`seqforecast.scores.conformal_width` of the model's absolute errors at step ``j``
over the calibration origins (the val span, forecast the same way).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import Any

import numpy as np
import pandas as pd

from seqforecast import scores
from seqforecast.errors import ConfigError

Bounds = dict[float, tuple[np.ndarray, np.ndarray]]
INSTALL = "pip install 'seqforecast[stats]' (utilsforecast)"


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


def cv_frame(
    uid: str,
    cutoffs: np.ndarray,
    times: np.ndarray,
    actual: np.ndarray,
    forecasts: dict[str, tuple[np.ndarray, Bounds]],
) -> pd.DataFrame:
    """One series' rows of the long table. ``cutoffs [n]`` label the origins, ``times [n, h]``
    the targets (timestamps, or row numbers without a time column), ``actual [n, h]``;
    ``forecasts``: each model's ``[n, h]`` and its bounds."""
    h = actual.shape[1]
    columns: dict[str, Any] = {
        "unique_id": uid,
        "ds": np.asarray(times).reshape(-1),
        "cutoff": np.repeat(cutoffs, h),
        "y": actual.reshape(-1),
    }
    for model, (forecast, bounds) in forecasts.items():
        columns[model] = forecast.reshape(-1)
        for level in sorted(bounds, reverse=True):
            columns[f"{model}-lo-{scores.level_name(level)}"] = bounds[level][0].reshape(-1)
        for level in sorted(bounds):
            columns[f"{model}-hi-{scores.level_name(level)}"] = bounds[level][1].reshape(-1)
    return pd.DataFrame(columns)


def evaluation() -> Any:
    """``utilsforecast.evaluation`` (the ``stats`` extra), or one line saying how to install it."""
    try:
        from utilsforecast import evaluation
    except ImportError:
        raise ConfigError(f"a backtest is scored by utilsforecast: {INSTALL}") from None
    return evaluation


def evaluate_frame(
    df: pd.DataFrame,
    train: pd.DataFrame,
    models: list[str],
    levels: Sequence[float],
    season: int,
) -> pd.DataFrame:
    """``metrics.csv``: ``unique_id, step, metric, <model>...``, each series' scores over all
    its origins and steps (``step`` all), then per step ahead. ``train``: the training rows
    ``unique_id, ds, y`` (MASE's scale: their in-sample seasonal-naive MAE at ``season``)."""
    from utilsforecast import losses

    evaluate = evaluation().evaluate
    metrics = [losses.mae, losses.rmse, partial(losses.mase, seasonality=season), losses.smape]
    metrics += [losses.coverage, losses.winkler_score, losses.scaled_crps] if levels else []
    level = [int(v) if float(v).is_integer() else v for v in levels]
    kw = dict(metrics=metrics, models=models, level=level or None)
    overall = evaluate(df.drop(columns="cutoff"), train_df=train, **kw).assign(step="all")
    # Per step ahead: each (series, step) scored as a series of its own, with its series'
    # training rows (utilsforecast groups by the id column only).
    uids = pd.unique(df["unique_id"])
    h = len(df) // df.groupby(["unique_id", "cutoff"]).ngroups
    series = pd.Index(uids).get_indexer(df["unique_id"])
    step = np.tile(np.arange(h), len(df) // h)
    keyed = df.drop(columns=["cutoff", "unique_id"]).assign(unique_id=series * h + step)
    t_series = pd.Index(uids).get_indexer(train["unique_id"])
    train_keyed = pd.DataFrame(
        {
            "unique_id": (t_series[:, None] * h + np.arange(h)).reshape(-1),
            "ds": np.repeat(train["ds"].to_numpy(), h),
            "y": np.repeat(train["y"].to_numpy(), h),
        }
    )
    per_step = evaluate(keyed, train_df=train_keyed, **kw)
    key = per_step["unique_id"].to_numpy()
    per_step = per_step.assign(unique_id=uids[key // h], step=key % h + 1)
    out = pd.concat([overall, per_step], ignore_index=True)
    return out[["unique_id", "step", "metric", *models]]


def overall_scores(metrics: pd.DataFrame) -> dict[str, dict[str, float]]:
    """Each model's scores over all steps, the mean over the series: ``{model: {metric: v}}``."""
    rows = metrics[metrics["step"] == "all"].drop(columns=["unique_id", "step"])
    means = rows.groupby("metric", sort=False).mean()  # [metric, model]
    return {m: {k: float(v) for k, v in means[m].items()} for m in means.columns}


def format_metrics(overall: dict[str, dict[str, float]]) -> str:
    """The overall row of each model as a text table for the terminal."""
    names = list(next(iter(overall.values())))
    rows = [["model", *names]]
    rows += [[model, *(f"{m[k]:.4f}" for k in names)] for model, m in overall.items()]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = [
        "  ".join(
            c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True))
        )
        for r in rows
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)

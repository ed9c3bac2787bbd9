"""The automatic forecast's choice as one ensemble folder (:mod:`seqforecast.ensemble`).

``model/`` holds the chosen networks' final checkpoints (each a seed ensemble), the chosen
statistical models by name (refitted at each forecast), the rule (``combine``: the mean or the
median), and conformal widths from the combination's validation errors in the ensemble's scale
(each series' error divided by its training scale, pooled over series and origins, times
``interval_scale``), so that ``predict.py``,
``backtest.py``, ``export.py``, the service and :func:`seqforecast.load_forecaster` forecast
with the choice later, on new rows of the same series.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from seqforecast import intervals, scores
from seqforecast.auto_forecast.pool import NETWORKS, SEASONAL_NAIVE, STATS
from seqforecast.auto_forecast.validate import ARIMA, Panel, final_checkpoints
from seqforecast.data.scaling import Scaler
from seqforecast.ensemble import SEASONAL_NAIVE as SNAIVE_MODEL
from seqforecast.ensemble import save_ensemble


def write_model(
    folder: Path,
    hist: Panel,
    chosen: list[str],
    runs: Path,
    season: int,
    horizon: int,
    target: str,
    actual: np.ndarray,
    forecast: np.ndarray,
    levels: list[float],
    combine: str = "mean",
    interval_scale: float = 1.0,
    arima: list[dict] | None = None,
) -> tuple[Path, list[str]]:
    """Save ``chosen`` as the ensemble ``folder``; ``(its manifest, the members' names)``.

    Args:
        folder: The ensemble's folder (``<output_dir>/model``).
        hist: The history the members were refitted on.
        chosen: The combination's candidates.
        runs: Where the networks' trainings are (``<output_dir>/runs``).
        season: The data's season.
        horizon: Steps of the combination's direct forecast.
        target: The target column.
        actual: The values at the validation origins ``[S, n_val, h]``.
        forecast: The combination's forecasts of them ``[S, n_val, h]``.
        levels: Interval levels in percent.
        combine: The rule over the members, ``mean`` or ``median``.
        interval_scale: The factor on the conformal widths (``combine.conformal``'s).
        arima: ``auto_arima``'s ARIMA settings per series of ``hist`` (its order, searched
            once): the member refits that ARIMA, as the validation did.
    """
    members: dict[str, list[Path] | str | dict] = {}
    for name in chosen:
        if name in NETWORKS:
            members[name] = final_checkpoints(runs, name)
        else:
            members[name] = SNAIVE_MODEL if name == SEASONAL_NAIVE else STATS[name]
    # Statistical members see each series' whole history, as they did here; networks their window.
    n_steps = int(hist.rows.min()) if any(n in STATS for n in chosen) else season
    nets = [n for n in chosen if n in NETWORKS]
    if nets:
        from seqforecast import load_forecaster

        first = load_forecaster(members[nets[0]][0], "cpu")
        scaler, data, series = first.scaler, None, None
        order = first.series  # the networks' series, in their scaling's order
    else:
        scaler, data = _scaling(hist), _data(hist, target, n_steps, horizon, season)
        series = order = [(k,) for k in hist.ids] if hist.id is not None else None
    if ARIMA in members and arima is not None:  # one ARIMA per series, in the ensemble's order
        per = [arima[hist.ids.index(key[0])] for key in order] if order else arima[:1]
        members[ARIMA] = {"model": "ARIMA", "settings": per}
    calibration = None
    if levels:
        errors = _scaled(scaler, actual) - _scaled(scaler, forecast)  # [S, n_val, h]
        errors = errors.reshape(-1, horizon)  # pooled over series and origins
        widths = interval_scale * np.stack(
            [scores.conformal_width(errors, lv) for lv in sorted(levels)]
        )
        calibration = intervals.Calibration("conformal", sorted(levels), widths, len(errors))
    path = save_ensemble(
        folder,
        members,
        horizon,
        combine=combine,
        season=season,
        n_steps=n_steps,
        calibration=calibration,
        data=data,
        scaler=None if nets else scaler,
        series=series,
    )
    return path, list(members)


def _scaling(hist: Panel) -> Scaler:
    """Standard scaling of each series' history (one for a single series), as training's."""
    parts = [v[:, np.newaxis] for v in hist.values]
    return Scaler("standard").fit_series(parts) if hist.id else Scaler("standard").fit(parts[0])


def _scaled(scaler: Scaler, values: np.ndarray) -> np.ndarray:
    """Targets ``[S, ...]`` of each series in the ensemble's scale (its transform too)."""
    per = scaler.per_series
    scaled = [scaler.transform(v[..., None], i if per else None) for i, v in enumerate(values)]
    return np.stack(scaled)[..., 0].astype(np.float64)


def _data(hist: Panel, target: str, n_steps: int, horizon: int, season: int) -> dict:
    """The data settings a checkpoint of statistical members alone would hold."""
    return {
        "path": "",
        "target_column": target,
        "time": hist.time,
        "id": hist.id,
        "inputs": [],
        "future_inputs": [],
        "calendar": [],
        "fill": None,
        "scaling": "standard",
        "scaling_scope": "series",
        "transform": "none",
        "n_steps": n_steps,
        "horizon": horizon,
        "season": season,
    }

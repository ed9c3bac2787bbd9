"""Errors in the data's own units: file data's forecasts and targets with the scaling undone.

The module logs MSE on the scaled values it trains on; for a file the user also wants to
know how far off the forecasts are in the file's units (sales, degrees), so
:func:`unit_errors` maps both back through the scaling fitted on the training rows (per
series for a panel) and, for a panel, :func:`series_table` gives the errors of each series.
"""

from __future__ import annotations

import numpy as np

from seqforecast.data.files import FileDataModule
from seqforecast.intervals import forecast
from seqforecast.module import ForecastModule


def unit_forecasts(
    model: ForecastModule, datamodule: FileDataModule, stage: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """One split's direct forecasts and targets ``[N, k]`` in the data's units, and each
    window's series ``[N]`` (``None`` for one series). Windows are gathered per eval batch."""
    x, y, series = datamodule.eval_windows(stage)  # lazy [N, T, F], [N, k], [N]
    pred, _ = forecast(model, x, batch_size=datamodule.eval_batch_size)  # [N, k]
    return datamodule.to_units(pred, series), datamodule.to_units(y, series), series


def unit_errors(
    model: ForecastModule, datamodule: FileDataModule, stages: tuple[str, ...] = ("val", "test")
) -> tuple[dict[str, float], list[dict[str, object]]]:
    """``{stage}/mae`` and ``{stage}/rmse`` of ``model``'s direct forecasts in the target
    column's units, averaged over every window and step of every series, and (panels) the
    rows of :func:`series_table`.

    Each window's forecast of the ``k`` steps after it (``[N, k]``; the last output step of
    a seq2seq model) and its targets are mapped back through the datamodule's training
    scaling (column 0, the target).
    """
    out, table = {}, {}
    for stage in stages:
        pred, actual, series = unit_forecasts(model, datamodule, stage)
        err = pred - actual  # [N, k]
        out[f"{stage}/mae"] = float(np.abs(err).mean())
        out[f"{stage}/rmse"] = float(np.sqrt((err**2).mean()))
        if datamodule.ids:
            table[stage] = series_errors(err, series, len(datamodule.keys))
    return out, (series_table(datamodule, table) if datamodule.ids else [])


def series_errors(err: np.ndarray, series: np.ndarray, n: int) -> dict[str, np.ndarray]:
    """Per series of ``n``: windows, MAE and RMSE of the errors ``err [N, k]`` of windows
    of ``series [N]``."""
    count = np.bincount(series, minlength=n)  # [S] windows
    values = count * err.shape[1]  # [S] errors
    mae = np.bincount(series, np.abs(err).sum(axis=1), minlength=n) / values
    mse = np.bincount(series, (err**2).sum(axis=1), minlength=n) / values
    return {"windows": count, "mae": mae, "rmse": np.sqrt(mse)}


def series_table(
    datamodule: FileDataModule, errors: dict[str, dict[str, np.ndarray]]
) -> list[dict[str, object]]:
    """One row per series kept: its id columns, then ``{stage}/windows|mae|rmse``."""
    rows = []
    for s, key in enumerate(datamodule.keys):
        row: dict[str, object] = dict(zip(datamodule.ids, key, strict=True))
        for stage, found in errors.items():
            row.update({f"{stage}/{name}": values[s].item() for name, values in found.items()})
        rows.append(row)
    return rows

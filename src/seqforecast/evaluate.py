"""Errors in the data's own units: file data's forecasts and targets with the scaling undone.

The module logs MSE on the scaled values it trains on; for a file the user also wants to
know how far off the forecasts are in the file's units (sales, degrees), so
:func:`unit_errors` maps both back through the scaling fitted on the training rows (per
series for a panel) and, for a panel, :func:`series_table` gives the errors of each series.
Windows are forecast in eval batches and only sums are kept: memory is one batch, whatever
the number of windows.
"""

from __future__ import annotations

import numpy as np
import torch

from seqforecast.data.files import FileDataModule
from seqforecast.module import ForecastModule


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
    datamodule.setup()  # once; its series are counted below
    model.eval()
    for stage in stages:
        n = len(datamodule.keys)  # one series for a single file
        windows, absolute, squared = np.zeros(n), np.zeros(n), np.zeros(n)  # per series
        with torch.inference_mode():
            for x, y, series in datamodule.eval_batches(stage):  # [b, T, F], [b, k], [b]
                pred = model.forecast(x.to(model.device)).double().cpu().numpy()  # [b, k]
                err = datamodule.to_units(pred, series) - datamodule.to_units(y, series)
                windows += np.bincount(series, minlength=n)
                absolute += np.bincount(series, np.abs(err).sum(axis=1), minlength=n)
                squared += np.bincount(series, (err**2).sum(axis=1), minlength=n)
        values = windows * datamodule.horizon  # [S] errors per series
        out[f"{stage}/mae"] = float(absolute.sum() / values.sum())
        out[f"{stage}/rmse"] = float(np.sqrt(squared.sum() / values.sum()))
        if datamodule.ids:
            per = {"windows": windows.astype(int), "mae": absolute / values}
            table[stage] = {**per, "rmse": np.sqrt(squared / values)}
    return out, (series_table(datamodule, table) if datamodule.ids else [])


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

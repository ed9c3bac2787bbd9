"""Errors in the data's own units: file data's forecasts and targets with the scaling undone.

The module logs MSE on the scaled values it trains on; for a file the user also wants to
know how far off the forecasts are in the file's units (sales, degrees), so
:func:`unit_errors` maps both back through the scaler fitted on the training rows.
"""

from __future__ import annotations

import numpy as np

from seqforecast.data.files import FileDataModule
from seqforecast.intervals import forecast, last_step
from seqforecast.module import ForecastModule


def unit_errors(
    model: ForecastModule, datamodule: FileDataModule, stages: tuple[str, ...] = ("val", "test")
) -> dict[str, float]:
    """``{stage}/mae`` and ``{stage}/rmse`` of ``model``'s direct forecasts, in the target
    column's units.

    Each window's forecast of the ``k`` steps after it (``[N, k]``; the last output step of
    a seq2seq model) and its targets are mapped back through the datamodule's training
    scaler (column 0, the target), then averaged over every window and step.
    """
    out = {}
    for stage in stages:
        x, y = datamodule.arrays(stage)  # [N, T, F], [N, k] or [N, T, k]
        pred, _ = forecast(model, x, batch_size=datamodule.eval_batch_size)  # [N, k]
        actual = last_step(y, datamodule.target_kind)  # [N, k]
        err = datamodule.scaler.inverse(pred) - datamodule.scaler.inverse(actual)
        out[f"{stage}/mae"] = float(np.abs(err).mean())
        out[f"{stage}/rmse"] = float(np.sqrt((err**2).mean()))
    return out

"""The checkpoint's forecasts from many origins in one batched pass, in the data's units."""

from __future__ import annotations

import numpy as np

from seqforecast.backtest.origins import input_windows
from seqforecast.predict.forecaster import Forecaster


def model_forecasts(
    forecaster: Forecaster,
    values: np.ndarray,
    cutoffs: np.ndarray,
    horizon: int,
    batch_size: int = 1024,
    series: int | None = None,
) -> np.ndarray:
    """Forecasts ``[n, horizon]`` (data units) of a file-trained model from cutoff rows ``[n]``.

    ``values [R, F]`` are the table's training columns in data units (the target first).
    They are scaled with the model's own training scaler, the windows ``[n, n_steps, F]``
    are a strided view of the scaled rows (:func:`~.origins.input_windows`), and
    ``Forecaster.predict`` runs them in batches of ``batch_size`` (iteratively past the
    model's horizon); the scaled forecasts are mapped back with the same scaler. ``series``:
    the index of the series ``values`` belong to, for a panel's per-series scaling.
    """
    scaled = forecaster.scaler.transform(values, series)  # [R, F] float32
    x = input_windows(scaled, cutoffs, forecaster.n_steps)  # [n, n_steps, F]
    y = forecaster.predict(x, horizon, batch_size=batch_size, series=series)  # [n, h] scaled
    return forecaster.scaler.inverse(y, series=series)  # [n, h]

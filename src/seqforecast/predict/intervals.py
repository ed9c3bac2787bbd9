"""Prediction intervals from a :class:`~seqforecast.predict.forecaster.Forecaster`.

:func:`calibration_for` picks the widths: those ``train.py`` stored in the checkpoint, else
(generated data) calibrated now on the val split rebuilt from the checkpoint's data settings,
the same windows and weights ``train.py`` would have used; :func:`predict_intervals` streams
the direct forecast and its bounds. The methods are :mod:`seqforecast.intervals`'.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from seqforecast import forecast
from seqforecast.data.windows import FLOAT32
from seqforecast.errors import InputError
from seqforecast.intervals import (
    Calibration,
    calibrate,
    check_levels,
    check_method,
    last_step,
    stream,
)
from seqforecast.memory import check_memory

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from seqforecast.predict.files import NpyRows
    from seqforecast.predict.forecaster import Forecaster


def calibration_for(
    forecaster: Forecaster, levels: Sequence[float] | None = None, method: str | None = None
) -> Calibration:
    """Widths of ``levels`` (default: the checkpoint's, ``forecaster.levels``) by ``method``
    (default: the checkpoint's, else ``conformal``): stored in the checkpoint, or calibrated
    now on the rebuilt val split (generated data only)."""
    stored = forecaster.calibration
    method = method or (stored.method if stored else "conformal")
    levels = check_levels(forecaster.levels if levels is None else levels)
    check_method(forecaster.module, method, levels)
    if method == "model" or not levels:  # the model's own quantiles: nothing to calibrate
        return Calibration(method, levels, np.zeros((len(levels), forecaster.horizon)), 0)
    if stored and stored.method == method and (found := stored.subset(levels)):
        return found
    if forecaster.data is None or forecaster.file_data:
        have = f"{stored.levels} by intervals={stored.method}" if stored else "none"
        raise InputError(
            f"levels={levels} intervals={method}: this checkpoint's calibrated intervals are "
            f"{have}, and it has no generated val split to calibrate others on; pick from "
            "those, or retrain with these levels and intervals"
        )
    x, y, settings = forecaster.generated_data("val")
    log.info(f"calibrating intervals={method} at levels={levels} on the rebuilt val split")
    return calibrate(forecaster.module, x, last_step(y, settings["target"]), levels, method)


def check_direct(forecaster: Forecaster, ahead: int, levels: Sequence[float] | None) -> None:
    """Intervals exist for the model's direct steps only: ``ahead`` past its horizon with
    levels is refused in one line."""
    asked = forecaster.levels if levels is None else levels  # named in the message
    forecast.check_direct(ahead, forecaster.horizon, asked)


def predict_intervals(
    forecaster: Forecaster,
    x: np.ndarray | NpyRows,
    ahead: int | None = None,
    levels: Sequence[float] | None = None,
    method: str | None = None,
    batch_size: int = 1024,
    progress: bool = False,
    calibration: Calibration | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The direct forecast and its intervals: windows ``x [N, T(, F)]`` -> float32
    ``[N, ahead]`` (as ``forecaster.predict``) and bounds ``[N, ahead, L, 2]`` (lo, hi) at
    ``levels`` by ``method`` (:func:`calibration_for`, unless ``calibration`` is given)."""
    ahead = forecaster.horizon if ahead is None else ahead
    forecaster.check_options(ahead, "sliding", batch_size)
    check_direct(forecaster, ahead, levels)
    calibration = calibration or calibration_for(forecaster, levels, method)
    if not hasattr(x, "shape"):
        x = np.asarray(x)
    forecaster.check_input(x)
    check_memory(
        FLOAT32 * len(x) * ahead * (1 + 2 * len(calibration.levels)),
        f"forecasting {len(x)} series with intervals at levels={calibration.levels}",
        "levels (or split the input)",
    )
    batches = forecaster.batches(x, batch_size, progress)
    return stream(forecaster.module, batches, len(x), ahead, calibration)

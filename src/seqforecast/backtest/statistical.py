"""statsforecast's ``AutoARIMA`` and ``AutoETS`` as backtest baselines (the ``stats`` extra).

A model is fitted on ``y[:fit_rows]`` (its parameters: order, smoothing weights), then
forecasts from each origin ``c`` through the library's ``forward(y[: c + 1], h)``, which
runs the fitted model over the history up to the origin without re-estimating it. Origins
that share ``fit_rows`` share one fit. This is statsforecast's own ``cross_validation``
with ``refit`` = an integer: fit at the first origin of each group, ``forward`` for all.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from seqforecast.errors import ConfigError
from seqforecast.names import STATISTICAL

INSTALL = "pip install 'seqforecast[stats]' (statsforecast)"


def statistical_model(name: str, season: int) -> Any:
    """A fresh statsforecast model for baseline ``name`` (``auto_arima`` | ``auto_ets``)."""
    if name not in STATISTICAL:
        raise ConfigError(
            f"baseline {name!r} is not statistical; expected one of {list(STATISTICAL)}"
        )
    try:
        from statsforecast import models
    except ImportError:
        raise ConfigError(f"baseline {name} needs statsforecast: {INSTALL}") from None
    classes = {"auto_arima": models.AutoARIMA, "auto_ets": models.AutoETS}
    return classes[name](season_length=season)


def statistical_forecasts(
    name: str,
    y: np.ndarray,
    cutoffs: np.ndarray,
    horizon: int,
    season: int,
    fit_rows: np.ndarray,
) -> np.ndarray:
    """``[n, h]`` forecasts of ``name`` from cutoffs ``[n]``, fitted on ``y[:fit_rows[i]]``."""
    y = np.asarray(y, np.float64)
    out = np.empty((len(cutoffs), horizon))
    model, fitted_on = None, None
    for i, (c, rows) in enumerate(zip(cutoffs, fit_rows, strict=True)):
        if rows != fitted_on:
            model, fitted_on = statistical_model(name, season).fit(y[:rows]), rows
        out[i] = model.forward(y=y[: c + 1], h=horizon)["mean"]
    return out

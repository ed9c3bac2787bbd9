"""The rule: the mean (``combine=median``: the median) of the best ``k`` candidates by
validation MASE, with conformal intervals from the combination's own validation errors,
widened by ``interval_scale``.

Why a fixed rule and not "whichever of the best single and the combination scored better on
validation": both are ranked on the same few validation origins, so that second choice
favours whichever was luckier on them; ``top_k=1`` gives the single best, and the accuracy
benchmark compares the two on held-out origins (docs/forecast.md).

Why the mean of 3 and a scale of 1.2: both were chosen on validation origins alone (rank and
calibrate on the earlier ones, score on the later ones; docs/forecast.md). The scale corrects
what split-conformal cannot see from one short span: the members are picked on the same
origins that calibrate the widths, and errors at later origins tend to exceed earlier ones.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from seqforecast import scores

COMBINERS = {"mean": np.mean, "median": np.median}  # combine=<name>


def members(val_mase: pd.Series, k: int) -> list[str]:
    """The ``k`` candidates of lowest ``val_mase`` (candidate -> mean over series; a missing
    score, e.g. a model that failed, ranks last and never joins)."""
    return val_mase.dropna().sort_values(kind="stable").index[:k].tolist()


def combine(forecasts: list[np.ndarray], how: str = "mean") -> np.ndarray:
    """The mean (or median, ``how``) over the members' forecasts (each of one shape)."""
    return COMBINERS[how](np.stack(forecasts), axis=0)


def conformal(
    val_actual: np.ndarray,
    val_forecast: np.ndarray,
    forecast: np.ndarray,
    level: float,
    scale: float = 1.0,
) -> tuple[np.ndarray, np.ndarray]:
    """``(lo, hi)`` of ``forecast [S, ..., h]``: per series and step ahead, plus and minus
    ``scale`` times the split-conformal width of the validation errors ``val_actual -
    val_forecast [S, n, h]``."""
    width = scale * np.stack(
        [
            scores.conformal_width(a - f, level)
            for a, f in zip(val_actual, val_forecast, strict=True)
        ]
    )  # [S, h]
    width = width.reshape(width.shape[0], *([1] * (forecast.ndim - 2)), width.shape[1])
    return forecast - width, forecast + width

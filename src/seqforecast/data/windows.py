"""Inputs and targets cut from series: the chapter's ``next`` and ``seq2seq`` targets.

Also the memory a DataModule's windows will take (:func:`window_bytes`), which the
memory check (:func:`seqforecast.memory.check_memory`) compares with the budget before
anything is allocated.
"""

from __future__ import annotations

import numpy as np

from seqforecast.errors import ConfigError, InputError
from seqforecast.names import MAX_STEPS as MAX_STEPS  # re-exported: the rule of n_steps
from seqforecast.names import TARGETS as TARGETS
from seqforecast.rules import check_window

FLOAT32 = 4  # bytes per window value


def check_series(series: np.ndarray, name: str = "series") -> None:
    """Training data must be a real-valued numeric array without NaN or inf."""
    if not isinstance(series, np.ndarray) or series.dtype.kind not in "fiu":
        kind = series.dtype if isinstance(series, np.ndarray) else type(series).__name__
        raise InputError(f"{name} must be a numeric array, got {kind}")
    bad = ~np.isfinite(series)
    if bad.any():
        first = tuple(int(i) for i in np.argwhere(bad)[0])
        raise InputError(
            f"{name} holds {int(bad.sum())} NaN/inf values (first at index {first}); "
            "training needs finite data"
        )


def make_windows(
    series: np.ndarray, n_steps: int, horizon: int, target: str
) -> tuple[np.ndarray, np.ndarray]:
    """Split series ``[N, L, F]`` with ``L >= n_steps + horizon`` into inputs and targets.

    Returns ``X [N, n_steps, F]`` and, predicting feature 0:

    - ``next``:    ``Y [N, horizon]`` with ``Y[:, j] = series[:, n_steps + j]``;
    - ``seq2seq``: ``Y [N, n_steps, horizon]`` with ``Y[:, t, j] = series[:, t + 1 + j]``,
      so that ``Y[:, -1, :]`` equals the ``next`` target.
    """
    check_window(n_steps, horizon, target)
    check_series(series)
    if series.ndim != 3 or series.shape[1] < n_steps + horizon or series.shape[2] < 1:
        raise ConfigError(
            f"series of shape {tuple(series.shape)} cannot hold n_steps + horizon = "
            f"{n_steps + horizon} steps; expected [N, >= {n_steps + horizon}, F]"
        )
    x = series[:, :n_steps]  # [N, T, F]
    if target == "next":
        y = series[:, n_steps : n_steps + horizon, 0]  # [N, k]
    else:
        # windows[n, t, j] = series[n, 1 + t + j, 0]
        shifted = series[:, 1 : n_steps + horizon, 0]  # [N, T + k - 1]
        y = np.lib.stride_tricks.sliding_window_view(shifted, horizon, axis=1)  # [N, T, k]
    return np.ascontiguousarray(x), np.ascontiguousarray(y)


def window_bytes(n_windows: int, n_steps: int, horizon: int, n_features: int, target: str) -> int:
    """Bytes of ``n_windows`` float32 windows: ``x [N, n_steps, F]`` and ``y [N, k]``
    (``next``) or ``[N, n_steps, k]`` (``seq2seq``)."""
    y_steps = n_steps if target == "seq2seq" else 1
    return FLOAT32 * n_windows * (n_steps * n_features + y_steps * horizon)

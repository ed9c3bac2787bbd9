"""Inputs and targets cut from series: the chapter's ``next`` and ``seq2seq`` targets."""

from __future__ import annotations

import numpy as np

from seqforecast.errors import ConfigError, InputError

TARGETS = ("next", "seq2seq")


def check_window(n_steps: int, horizon: int, target: str) -> None:
    """Validate the window settings shared by data and models; raise :class:`ConfigError`."""
    if not isinstance(n_steps, int) or isinstance(n_steps, bool) or n_steps < 2:
        raise ConfigError(f"n_steps must be an integer >= 2, got {n_steps!r}")
    if not isinstance(horizon, int) or isinstance(horizon, bool) or horizon < 1:
        raise ConfigError(f"horizon must be an integer >= 1, got {horizon!r}")
    if target not in TARGETS:
        raise ConfigError(f"target must be one of {list(TARGETS)}, got {target!r}")


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

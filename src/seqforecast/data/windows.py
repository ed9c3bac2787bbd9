"""Inputs and targets cut from series: the chapter's ``next`` and ``seq2seq`` targets.

Also the memory a DataModule's windows will take (:func:`window_bytes`) and the check
that refuses a run whose windows would not fit in the memory available
(:func:`check_memory`), before anything is allocated.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from seqforecast.errors import ConfigError, InputError
from seqforecast.rules import check

TARGETS = ("next", "seq2seq")
# Longest window accepted (the rule of ``n_steps``). Building a model walks its steps in
# Python (one list entry per step), so an absurd n_steps read from a checkpoint must stop
# before that, not after.
MAX_STEPS = 1_000_000
FLOAT32 = 4  # bytes per window value


def check_window(n_steps: int, horizon: int, target: str, target_key: str = "target") -> None:
    """The window settings shared by data and models, each checked by its rule.

    ``target_key`` names the target setting where it is not ``target`` (file data:
    ``data.target_kind``, beside the column ``data.target``).
    """
    check("n_steps", n_steps)
    check("horizon", horizon)
    check(target_key, target)


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


def available_memory() -> int | None:
    """Bytes of memory available to a new allocation, or ``None`` when the host won't say.

    Linux's ``MemAvailable`` (free plus reclaimable cache); elsewhere the free physical
    pages from ``sysconf``.
    """
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024  # kB
    except (OSError, ValueError, IndexError):
        pass
    try:
        pages = os.sysconf("SC_AVPHYS_PAGES")
        size = os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None
    return pages * size if pages > 0 and size > 0 else None


def gigabytes(n: float) -> str:
    """``37.3 GB`` (or ``512.0 MB`` below 0.1 GB)."""
    return f"{n / 1e9:.1f} GB" if n >= 1e8 else f"{n / 1e6:.1f} MB"


def check_memory(need: int, what: str, lower: str) -> None:
    """Refuse, in one :class:`ConfigError` line, ``need`` bytes beyond the memory available.

    ``what`` names what takes the memory and the settings it comes from ("the windows of
    n_steps=100000 with data.n_series=500"), ``lower`` the keys that shrink it. No check
    when the host reports no figure.
    """
    free = available_memory()
    if free is not None and need > free:
        raise ConfigError(
            f"{what} would need about {gigabytes(need)} of memory; {gigabytes(free)} is "
            f"available: lower {lower}"
        )

"""Which origins a backtest forecasts from, and the windows cut at them by index arithmetic.

Rows are numbered ``0..R-1`` in file order. An origin is a *cutoff* row ``c``: the last row
known when the forecast is made. Its input window is rows ``c - n_steps + 1 .. c`` and its
targets are rows ``c + 1 .. c + horizon``; nothing after ``c`` is read for it. A span
``[lo, hi)`` (the test rows, or the val rows for calibration) holds the origins whose every
target lies inside it, ``c`` from ``lo - 1`` to ``hi - horizon - 1``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from seqforecast.data.splits import resolve_split
from seqforecast.errors import ConfigError, InputError

if TYPE_CHECKING:
    import pandas as pd


@dataclass(frozen=True)
class Spans:
    """Row boundaries of the file's splits: train ``[0, val)``, val ``[val, test)``, test
    ``[test, rows)``."""

    val: int
    test: int
    rows: int


def split_spans(split: Sequence[Any], n: int, what: str, times: pd.Series | None) -> Spans:
    """The checkpoint's ``data.split`` applied to ``n`` rows of one series (``what`` names
    them in errors; ``times``: their timestamps, for a split by dates)."""
    train, val, _ = resolve_split(split, n, what, times)
    return Spans(val=train, test=train + val, rows=n)


def span_cutoffs(
    lo: int,
    hi: int,
    horizon: int,
    n_windows: int | None = None,
    step_size: int = 1,
    what: str = "test",
) -> np.ndarray:
    """Cutoff rows ``[n]`` (increasing) of ``n_windows`` origins ``step_size`` rows apart whose
    targets all lie in rows ``[lo, hi)``; the last origin's targets end at row ``hi - 1``.

    ``n_windows=None`` takes as many as fit. ``(n_windows - 1) * step_size + horizon`` rows
    must fit in the span, else a :class:`ConfigError` names the sizes.
    """
    rows = hi - lo
    if rows < horizon:
        raise ConfigError(
            f"horizon={horizon} is longer than the {what} span ({rows} rows, {lo}..{hi - 1}); "
            "lower horizon or give the split more rows"
        )
    fit = (rows - horizon) // step_size + 1
    n = fit if n_windows is None else n_windows
    if n > fit:
        raise ConfigError(
            f"n_windows={n_windows} x step_size={step_size} does not fit the {what} span: "
            f"(n_windows - 1) x step_size + horizon = {(n - 1) * step_size + horizon} rows, "
            f"but it has {rows} (at most n_windows={fit} at this step_size and horizon={horizon})"
        )
    return hi - horizon - 1 - step_size * np.arange(n - 1, -1, -1)


def check_history(cutoffs: np.ndarray, n_steps: int, what: str) -> None:
    """Every origin has ``n_steps`` rows of inputs at or before it."""
    if len(cutoffs) and cutoffs[0] < n_steps - 1:
        raise InputError(
            f"the first {what} origin (row {int(cutoffs[0])}) has {int(cutoffs[0]) + 1} rows of "
            f"history; the model needs n_steps={n_steps}"
        )


def input_windows(scaled: np.ndarray, cutoffs: np.ndarray, n_steps: int) -> np.ndarray:
    """The input windows of each origin: ``scaled [R, F]`` -> ``[n, n_steps, F]``, rows
    ``c - n_steps + 1 .. c`` of origin ``c``.

    Evenly spaced origins (a backtest's) give a strided view of ``scaled``, no copy; others
    a gathered copy.
    """
    # Writeable so torch takes a batch without copying it again; nothing writes to it.
    view = np.lib.stride_tricks.sliding_window_view(scaled, n_steps, axis=0, writeable=True)
    starts = np.asarray(cutoffs) - n_steps + 1  # [n]
    step = int(starts[1] - starts[0]) if len(starts) > 1 else 1
    if step > 0 and np.array_equal(starts, starts[0] + step * np.arange(len(starts))):
        picked = view[starts[0] : starts[-1] + 1 : step]  # [n, F, n_steps], a view
    else:
        picked = view[starts]  # [n, F, n_steps], a copy
    return picked.transpose(0, 2, 1)  # [n, n_steps, F]


def target_rows(cutoffs: np.ndarray, horizon: int) -> np.ndarray:
    """Row numbers of each origin's targets: ``[n, horizon]``, ``c + 1 .. c + horizon``."""
    return cutoffs[:, np.newaxis] + np.arange(1, horizon + 1)  # [n, h]

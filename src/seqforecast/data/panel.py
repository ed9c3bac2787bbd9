"""Long tables: many series in one file, told apart by id columns (``data.id``).

A long table holds one row per (series, time), as in ``[unique_id, ds, y]``; its rows may
come in any order across series, but within a series the time must strictly increase. Each
series is read and validated on its own by :func:`~seqforecast.data.table.load_table`
(numbers, finite values, duplicate or unordered times, gaps and ``data.fill``), with errors
naming the series and the file's line. Without id columns the file is one series.

Calendar features (``data.calendar``) are derived from the time column; each is a pair
``sin(2 pi v / p), cos(2 pi v / p)`` of its value ``v`` with period ``p`` (day of week
``0..6`` over 7, month ``1..12`` over 12, ...), so December sits next to January.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from seqforecast.data.table import check_columns, load_table, read_frame, row_in_file, to_dates
from seqforecast.errors import InputError
from seqforecast.names import CALENDAR

if TYPE_CHECKING:
    import pandas as pd


@dataclass
class Panel:
    """Series after series: ``values [rows, F]`` float32 (``columns`` order); series ``s`` is
    rows ``starts[s]:starts[s + 1]``, named by ``keys[s]`` (its id values as strings; ``()``
    for a file of one series) and timed by ``times[s]`` when there is a time column."""

    values: np.ndarray
    starts: np.ndarray
    keys: list[tuple[str, ...]]
    times: list[pd.Series] | None
    columns: list[str]

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.starts)

    def rows(self, s: int) -> np.ndarray:
        """Series ``s``'s rows ``[n_s, F]`` (a view)."""
        return self.values[self.starts[s] : self.starts[s + 1]]


def series_label(ids: Sequence[str], key: Sequence[str]) -> str:
    """``store=3, item=7``: one series of a long table, as errors and tables name it."""
    return ", ".join(f"{c}={v}" for c, v in zip(ids, key, strict=True))


def calendar_names(calendar: Sequence[str]) -> list[str]:
    """The feature columns of ``calendar``: ``dayofweek_sin``, ``dayofweek_cos``, ..."""
    return [f"{c}_{f}" for c in calendar for f in ("sin", "cos")]


def calendar_features(times: pd.Series, calendar: Sequence[str], column: str) -> np.ndarray:
    """``[n, 2 * len(calendar)]`` float32: the sin/cos pairs of each feature of ``times``."""
    import pandas as pd

    if calendar and not pd.api.types.is_datetime64_any_dtype(times):
        raise InputError(
            f"data.calendar={list(calendar)} needs dates in the time column {column!r}, "
            "which holds numbers"
        )
    out = np.empty((len(times), 2 * len(calendar)), dtype=np.float32)
    for i, name in enumerate(calendar):
        attr, period = CALENDAR[name]
        angle = 2 * np.pi * getattr(times.dt, attr).to_numpy(np.float64) / period  # [n]
        out[:, 2 * i], out[:, 2 * i + 1] = np.sin(angle), np.cos(angle)
    return out


def _parse_dates(frame: pd.DataFrame, time: str, path: Path) -> pd.DataFrame:
    """The table with a text time column parsed once for all series, not once per series
    (numbers and parsed dates: the table itself, not a copy)."""
    import pandas as pd

    raw = frame[time]
    if pd.api.types.is_numeric_dtype(raw) or pd.api.types.is_datetime64_any_dtype(raw):
        return frame
    frame = frame.copy(deep=False)  # the other columns are shared, not copied
    frame[time] = to_dates(raw, time, str(path))
    return frame


def load_panel(
    path: str | Path,
    columns: Sequence[str],
    time: str | None = None,
    fill: str | None = None,
    ids: Sequence[str] = (),
    frame: pd.DataFrame | None = None,
) -> Panel:
    """Read the series of ``path`` (``ids``: the columns naming a series; none: one series),
    each validated by :func:`load_table`; series are ordered by their id values."""
    path = Path(path)
    frame = read_frame(path) if frame is None else frame
    if not ids:
        table = load_table(path, columns, time, fill, frame=frame)
        n = len(table.values)
        times = None if table.times is None else [table.times]
        return Panel(table.values, np.array([0, n]), [()], times, list(columns))
    check_columns(frame, [*ids, *columns, *([time] if time else [])], path)
    for c in ids:
        empty = frame[c].isna().to_numpy()
        if empty.any():
            raise InputError(
                f"{path}: id column {c!r} has {int(empty.sum())} empty cells (first at "
                f"{row_in_file(path, int(np.argmax(empty)), rows=frame.index)}); every row "
                "needs its series' id"
            )
    if frame.empty:
        raise InputError(f"data file {path} has a header but no rows")
    if time:
        frame = _parse_dates(frame, time, path)
    # Grouped on the raw ids (no text copy of a long column); ordered by their text.
    groups = frame.groupby(list(ids), sort=False).indices  # {key: positions}
    named = sorted(
        (
            (tuple(map(str, key if isinstance(key, tuple) else (key,))), where)
            for key, where in groups.items()
        ),
        key=lambda item: item[0],
    )
    parts, keys, times = [], [], []
    for key, where in named:  # the rows keep the file's row numbers as their index
        rows = frame.iloc[where]
        table = load_table(path, columns, time, fill, frame=rows, series=series_label(ids, key))
        parts.append(table.values)
        keys.append(key)
        times.append(table.times)
    starts = np.cumsum([0, *(len(p) for p in parts)])
    values = np.concatenate(parts) if parts else np.zeros((0, len(columns)), np.float32)
    return Panel(values, starts, keys, times if time else None, list(columns))

"""Read and validate a table of series (CSV, or Parquet with a Parquet engine installed).

``load_table(path, columns, time, fill)`` returns the chosen numeric columns as one
float32 array ``[rows, F]`` (in the order asked for) and, when a time column is named,
its timestamps. Every problem stops with one :class:`InputError` line naming the file,
the column and the row: a missing file or column, non-numeric values, values that are
infinite or too large for float32 (the model's precision), missing values or gaps in the
time column (unless ``fill`` says how to treat them), unordered times.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from seqforecast.errors import InputError
from seqforecast.names import FILLS as FILLS  # re-exported: the rule of data.fill
from seqforecast.rules import check

if TYPE_CHECKING:  # pandas is imported where a file is read, off the train start-up path
    import pandas as pd

READERS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}
FLOAT32_MAX = float(np.finfo(np.float32).max)  # 3.4e38: larger values become inf in float32


@dataclass
class Table:
    """``values [rows, F]`` float32 in ``columns`` order; ``times`` when a time column exists."""

    values: np.ndarray
    columns: list[str]
    times: pd.Series | None


def row_in_file(
    path: Path,
    i: int,
    times: pd.Series | None = None,
    time: str | None = None,
    rows: pd.Index | None = None,
) -> str:
    """Data row ``i`` (a position; ``rows``: the file's row numbers of the positions, for one
    series of a long table) as the user finds it: the file line (CSV, the header is line 1)
    or the 1-based data row, and its time value when there is a time column."""
    row = int(i if rows is None else rows[i])
    where = f"line {row + 2}" if path.suffix == ".csv" else f"data row {row + 1}"
    return where if times is None else f"{where}, {time} {times.iloc[i]}"


def read_frame(path: str | Path) -> pd.DataFrame:
    """The file as a DataFrame (pandas' readers; no hand parsing)."""
    import pandas as pd

    path = Path(path)
    kind = READERS.get(path.suffix.lower())
    if kind is None:
        raise InputError(f"data file {path} must be one of {sorted(READERS)} files")
    if not path.is_file():
        raise InputError(f"data file not found: {path}")
    try:
        if kind == "csv":
            return pd.read_csv(path)
        return pd.read_parquet(path)
    except ImportError as err:
        raise InputError(
            f"reading {path} needs a Parquet engine: install pyarrow (pip install pyarrow) "
            f"or fastparquet ({str(err).splitlines()[0][:100]})"
        ) from None
    except pd.errors.EmptyDataError:
        raise InputError(f"data file {path} is empty; expected a header row and data") from None
    except (ValueError, OSError, pd.errors.ParserError) as err:
        raise InputError(
            f"data file {path} is not a readable {kind} table ({str(err).splitlines()[0][:120]})"
        ) from None


def check_columns(frame: pd.DataFrame, wanted: Sequence[str], path: Path) -> None:
    """Every wanted column exists; otherwise name the missing ones and list those present."""
    have = [str(c) for c in frame.columns]
    missing = [c for c in wanted if c not in have]
    if missing:
        raise InputError(f"{path}: no column {missing}; the file has columns {have}")
    if len(set(wanted)) != len(wanted):
        raise InputError(f"{path}: columns {list(wanted)} name a column twice")


def numeric(frame: pd.DataFrame, column: str, path: Path, name: str | None = None) -> pd.Series:
    """The column as float64; a non-number (not an empty cell) is an error naming its row."""
    import pandas as pd

    raw = frame[column]
    values = pd.to_numeric(raw, errors="coerce")
    bad = values.isna() & raw.notna()
    if bad.any():
        i = int(np.argmax(bad.to_numpy()))
        raise InputError(
            f"{name or path}: column {column!r} holds a non-numeric value {raw.iloc[i]!r} at "
            f"{row_in_file(path, i, rows=raw.index)} ({int(bad.sum())} such values); "
            "expected numbers"
        )
    return values.astype(np.float64)


def check_finite(
    data: pd.DataFrame,
    path: Path,
    times: pd.Series | None = None,
    time: str | None = None,
    name: str | None = None,
) -> None:
    """Every value is finite and within float32's range; empty cells (NaN) are left to fill.

    ``data`` holds the file's rows in order, as float64 (before any float32 cast would turn
    a large value into inf and the windows would repeat it many times over); ``times`` the
    time column as written in the file, to name the row by its time.
    """
    values = data.to_numpy(dtype=np.float64)  # [rows, F]
    bad = np.isinf(values) | (np.abs(values) > FLOAT32_MAX)  # NaN compares False: not here
    if bad.any():
        i, j = (int(k) for k in np.argwhere(bad)[0])  # the first row, then its first column
        n = int(bad.sum())
        raise InputError(
            f"{name or path}: column {data.columns[j]!r} holds {values[i, j]:g} at "
            f"{row_in_file(path, i, times, time, data.index)}, infinite or too large for float32 "
            f"(|x| > {FLOAT32_MAX:.4g}); first of {n} such value{'s' if n > 1 else ''} in "
            "the file; expected finite numbers"
        )


def to_dates(raw: pd.Series, column: str, name: str) -> pd.Series:
    """Text times as dates: one format inferred from the first rows, else each row's own
    (e.g. dates, then date-times); neither is an error naming the ``column`` of ``name``."""
    import pandas as pd

    try:
        try:
            return pd.to_datetime(raw)
        except ValueError:
            with warnings.catch_warnings():  # a mix of offsets: parse_times refuses it
                warnings.filterwarnings("ignore", ".*parsing datetimes with mixed time zones")
                return pd.to_datetime(raw, format="mixed")
    except (ValueError, TypeError) as err:
        raise InputError(
            f"{name}: time column {column!r} is neither numbers nor dates "
            f"({str(err).splitlines()[0][:100]})"
        ) from None


def parse_times(raw: pd.Series, column: str, path: Path, name: str | None = None) -> pd.Series:
    """Numbers stay numbers; anything else is parsed as dates. Must strictly increase: a
    repeated time is a duplicate row, a smaller one an unsorted file (``name``: the file, or
    one series of it, in errors)."""
    import pandas as pd

    name = name or str(path)
    if raw.isna().any():
        i = int(np.argmax(raw.isna().to_numpy()))
        raise InputError(
            f"{name}: time column {column!r} has {int(raw.isna().sum())} empty cells "
            f"(first at {row_in_file(path, i, rows=raw.index)}); every row needs a time"
        )
    if pd.api.types.is_datetime64_any_dtype(raw):  # parsed already (one series of a panel)
        times = raw
    elif pd.api.types.is_numeric_dtype(raw):
        times = raw.astype(np.float64)
    else:
        times = to_dates(raw, column, name)
        if not pd.api.types.is_datetime64_any_dtype(times):  # objects: offsets differ per row
            _check_one_kind_of_time(times, column, path, name, raw.index)
    if len(times) < 2:  # a single row: nothing to order
        return times.reset_index(drop=True)
    steps = times.diff().iloc[1:]
    zero = steps.iloc[0] * 0
    back = (steps <= zero).to_numpy()
    if back.any():
        i = int(np.argmax(back)) + 1
        at = row_in_file(path, i, rows=raw.index)
        if steps.iloc[i - 1] == zero:
            raise InputError(
                f"{name}: duplicate rows for time {times.iloc[i]} "
                f"({row_in_file(path, i - 1, rows=raw.index)} and {at}); expected one row per time"
            )
        raise InputError(
            f"{name}: time column {column!r} does not increase at {at} "
            f"({times.iloc[i - 1]} then {times.iloc[i]}); sort the file by time"
        )
    return times.reset_index(drop=True)


def _check_one_kind_of_time(
    times: pd.Series, column: str, path: Path, name: str, rows: pd.Index
) -> None:
    """Times with and without a time zone cannot be ordered against each other: refuse the
    mix, naming the first row of each kind."""
    naive = np.array([getattr(t, "tzinfo", None) is None for t in times])
    if naive.all() or not naive.any():
        return
    i, j = int(np.argmax(naive)), int(np.argmax(~naive))
    raise InputError(
        f"{name}: time column {column!r} mixes times without a time zone "
        f"({row_in_file(path, i, rows=rows)}: {times.iloc[i]}) and with one "
        f"({row_in_file(path, j, rows=rows)}: {times.iloc[j]}); give every time an offset "
        "(e.g. +01:00) or none"
    )


def find_gaps(times: pd.Series) -> tuple[object, np.ndarray]:
    """The usual spacing (the most common step) and, per step, how many times it skips.

    A step of ``m`` times the usual spacing (``m`` a whole number > 1) skips ``m - 1``
    timestamps; other steps (irregular series, calendar months) count as no gap.
    """
    steps = times.diff().iloc[1:]
    if steps.empty:
        return None, np.zeros(0, dtype=int)
    spacing = steps.mode().iloc[0]
    ratio = (steps / spacing).to_numpy(dtype=np.float64)
    whole = np.isclose(ratio, np.round(ratio)) & (ratio > 1.5)
    return spacing, np.where(whole, np.round(ratio) - 1, 0).astype(int)


def load_table(
    path: str | Path,
    columns: Sequence[str],
    time: str | None = None,
    fill: str | None = None,
    frame: pd.DataFrame | None = None,
    series: str | None = None,
) -> Table:
    """Read ``columns`` (numbers) and the ``time`` column of ``path``; see the module doc.

    ``fill``: ``None`` (missing values or gaps are errors), ``ffill`` (carry the last value
    forward; leading empty rows are dropped), ``interpolate`` (linear in the row order,
    ends held constant) or ``drop`` (drop rows with a missing value; gaps are left as they
    are). With ``ffill``/``interpolate`` a gap in the time column is first filled with the
    skipped timestamps (empty rows), then filled like a missing value. ``frame``: the
    file's contents when already read (for one series of a long table: its rows, indexed
    by their row numbers in the file, and ``series`` names it in errors).
    """
    import pandas as pd

    path = Path(path)
    name = f"{path} series {series}" if series else str(path)
    check("data.fill", fill)
    frame = read_frame(path) if frame is None else frame
    check_columns(frame, [*columns, *([time] if time else [])], path)
    if frame.empty:
        raise InputError(f"data file {path} has a header but no rows")
    data = pd.DataFrame({c: numeric(frame, c, path, name) for c in columns})
    times = parse_times(frame[time], time, path, name) if time else None
    shown = frame[time].reset_index(drop=True) if time else None  # as written, for messages
    check_finite(data, path, shown, time, name)
    rows = frame.index

    if times is not None:
        spacing, skipped = find_gaps(times)
        if skipped.sum():
            first = int(np.argmax(skipped > 0)) + 1
            where = f"{times.iloc[first - 1]} -> {times.iloc[first]}"
            if fill is None:
                raise InputError(
                    f"{name}: time column {time!r} skips {int(skipped.sum())} timestamps in "
                    f"{int((skipped > 0).sum())} gaps (first: {where}, "
                    f"{row_in_file(path, first, rows=rows)}) "
                    f"at the usual spacing {spacing}; set data.fill=ffill|interpolate|drop"
                )
            if fill != "drop":
                full = np.arange(len(times) + int(skipped.sum()))
                grid = times.iloc[0] + spacing * full
                data.index = pd.Index(((times - times.iloc[0]) / spacing).round().astype(int))
                data = data.reindex(full)
                times = pd.Series(grid)

    empty = data.isna()
    if empty.to_numpy().any():
        if fill is None:
            counts = {c: int(n) for c, n in empty.sum().items() if n}
            i = int(np.argmax(empty.any(axis=1).to_numpy()))
            n = int(empty.to_numpy().sum())
            raise InputError(
                f"{name}: {n} missing value{'s' if n > 1 else ''} {counts} (first at "
                f"{row_in_file(path, i, shown, time, rows)}); set data.fill=ffill|interpolate|drop"
            )
        if fill == "ffill":
            data = data.ffill()
        elif fill == "interpolate":
            data = data.interpolate(method="linear", limit_direction="both")
        keep = data.notna().all(axis=1).to_numpy()
        data = data[keep]
        times = None if times is None else times[keep].reset_index(drop=True)
    if data.empty:
        raise InputError(f"data file {name} has no complete rows left after data.fill={fill}")
    return Table(data.to_numpy(dtype=np.float32), list(columns), times)

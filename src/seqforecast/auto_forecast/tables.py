"""The tables of the automatic forecast: the input read into a :class:`~.validate.Panel`,
and the long tables it writes (statsforecast's format: ``unique_id, ds, [cutoff, y,]
<model> ...``) with each row's time, past a series' end too."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from seqforecast.auto_forecast.validate import LEVEL, Panel
from seqforecast.core import future_times
from seqforecast.errors import InputError

TIMES_SEEN = 8  # the last rows whose spacing gives the future times


def read_panel(path: str, time_col: str | None, target: str, id_col: str | None) -> Panel:
    """The series of table ``path`` (.csv or .parquet), each in time order."""
    file = Path(path)
    if not file.is_file():
        raise InputError(f"input={path}: no such file")
    try:
        table = pd.read_parquet(file) if file.suffix == ".parquet" else pd.read_csv(file)
    except (ValueError, OSError, ImportError) as err:
        raise InputError(f"input={path}: not a readable table ({err})") from None
    for key, column in (("data.time", time_col), ("data.target", target), ("data.id", id_col)):
        if column is not None and column not in table:
            raise InputError(
                f"{key}={column!r} is not a column of {path}; it has {list(table.columns)}"
            )
    y = pd.to_numeric(table[target], errors="coerce")
    if y.isna().any() or not np.isfinite(y).all():
        bad = int((y.isna() | ~np.isfinite(y.fillna(0))).sum())
        raise InputError(f"column {target!r} of {path}: {bad} missing or non-numeric values")
    table[target] = y.astype(np.float64)
    if time_col is not None and not pd.api.types.is_numeric_dtype(table[time_col]):
        try:
            table[time_col] = pd.to_datetime(table[time_col])
        except (ValueError, TypeError) as err:
            raise InputError(f"data.time={time_col!r}: not dates ({err})") from None
    keep = [c for c in (id_col, time_col, target) if c is not None]
    groups = [("", table)] if id_col is None else table.groupby(id_col, sort=True)
    ids, values, frames = [], [], []
    for key, g in groups:
        g = g[keep]
        if time_col is not None:
            g = g.sort_values(time_col, kind="stable")
            if g[time_col].duplicated().any():
                raise InputError(f"{path}: series {key!r} repeats times in {time_col!r}")
        ids.append(str(key) if id_col is not None else Path(path).stem)
        values.append(g[target].to_numpy(np.float64))
        frames.append(g.reset_index(drop=True))
    return Panel(ids, values, frames, time_col, id_col)


def targets(panel: Panel, cuts: np.ndarray, horizon: int) -> np.ndarray:
    """``[S, n, h]`` actual values after cutoff rows ``cuts [S, n]``."""
    steps = np.arange(1, horizon + 1)
    return np.stack([v[c[:, np.newaxis] + steps] for v, c in zip(panel.values, cuts, strict=True)])


def times(panel: Panel, s: int, rows: np.ndarray) -> np.ndarray:
    """The times of rows ``rows`` (any shape) of series ``s``, past its end too."""
    times = panel.frames[s][panel.time] if panel.time else pd.Series(np.arange(panel.rows[s]))
    extra = int(rows.max()) + 1 - len(times)
    if extra > 0:  # the spacing of the last rows, as predict's tables
        later = future_times(times.iloc[-TIMES_SEEN:].reset_index(drop=True), extra, panel.time)
        times = pd.concat([times, pd.Series(later)])
    return times.to_numpy()[rows]


def long_table(
    panel: Panel,
    cuts: np.ndarray,
    horizon: int,
    cols: dict[str, np.ndarray],
    fc: dict[str, dict[str, np.ndarray]],
    part: str = "val",
) -> pd.DataFrame:
    """``unique_id, ds, cutoff, y, <model> ...`` (+ the statistical models' own
    ``-lo-80``/``-hi-80`` of ``part``) for cutoffs ``cuts [S, n]``, models ``cols [S, n, h]``."""
    n = cuts.shape[1]
    rows = cuts[:, :, np.newaxis] + np.arange(1, horizon + 1)  # [S, n, h]
    table = pd.DataFrame(
        {
            "unique_id": np.repeat(panel.ids, n * horizon),
            "ds": np.concatenate([times(panel, s, rows[s]).ravel() for s in range(len(rows))]),
            "cutoff": np.concatenate(
                [np.repeat(times(panel, s, cuts[s]), horizon) for s in range(len(cuts))]
            ),
            "y": targets(panel, cuts, horizon).reshape(-1),
        }
    )
    for name, values in cols.items():
        table[name] = values.reshape(-1)
        if f"{part}-lo" in fc.get(name, {}):
            table[f"{name}-lo-{LEVEL}"] = fc[name][f"{part}-lo"].reshape(-1)
            table[f"{name}-hi-{LEVEL}"] = fc[name][f"{part}-hi"].reshape(-1)
    return table


def future_table(panel: Panel, horizon: int, cols: dict[str, np.ndarray]) -> pd.DataFrame:
    """``unique_id, ds, <model> ...`` for the ``horizon`` steps after each series' end."""
    rows = panel.rows[:, np.newaxis] + np.arange(horizon)  # [S, h]
    table = pd.DataFrame(
        {
            "unique_id": np.repeat(panel.ids, horizon),
            "ds": np.concatenate([times(panel, s, rows[s]) for s in range(len(rows))]),
        }
    )
    for name, values in cols.items():
        table[name] = values.reshape(-1)
    return table

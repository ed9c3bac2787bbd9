"""Forecast past the end of each series of a table like the training file.

The table holds the training columns (target, inputs, future inputs, time and, for a
panel, the id columns). Each series' last ``n_steps`` rows with a target are its history;
rows after them whose target is empty are its future rows, which carry the known-future
inputs (``data.future_inputs``) for the forecast: a model with such inputs needs them for
its ``horizon`` steps. Calendar features of the future come from the future rows' times, or
from timestamps inferred from the series' own spacing. Forecasts are mapped back to the
data's units through the training scaling (per series for a panel trained with
``scaling_scope=series``, which therefore knows only its training series' ids; a panel
scaled globally forecasts any id).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from seqforecast.core import future_times
from seqforecast.data.lazy import Windows
from seqforecast.data.panel import calendar_features, load_panel, series_label
from seqforecast.data.table import read_frame
from seqforecast.errors import InputError

if TYPE_CHECKING:
    from collections.abc import Sequence

    from seqforecast.predict.forecaster import Forecaster


def _settings(d: dict[str, Any]) -> dict[str, Any]:
    """The stored data settings with the defaults of checkpoints written before panels."""
    ids = d.get("id") or []
    return {
        "target": d["target_column"],
        "inputs": list(d.get("inputs", [])),
        "future": list(d.get("future_inputs", [])),
        "calendar": list(d.get("calendar", [])),
        "time": d.get("time"),
        "fill": d.get("fill"),
        "ids": [ids] if isinstance(ids, str) else list(ids),
    }


def split_future(
    frame: pd.DataFrame, target: str, ids: list[str]
) -> tuple[pd.DataFrame, dict[tuple[str, ...], pd.DataFrame]]:
    """``(history, future)``: each series' trailing rows with an empty target are its future
    rows, returned per series (keyed by its id values as text, ``()`` for one series)."""
    has = frame[target].notna().astype(int)
    by = [frame[c].astype(str) for c in ids] or [pd.Series("", index=frame.index)]
    # A row is history when it, or a later row of its series, has a target.
    later = has.iloc[::-1].groupby(by, sort=False).cummax().iloc[::-1].to_numpy(bool)
    future = frame[~later].groupby([b[~later] for b in by], sort=False)
    # Keys as tuples of the id values; one series' constant "" key becomes ().
    keyed = {(k if isinstance(k, tuple) else (k,))[: len(ids)]: rows for k, rows in future}
    return frame[later], keyed


def forecast_table(
    forecaster: Forecaster,
    source: str | Path | pd.DataFrame,
    ahead: int,
    window: str = "sliding",
    levels: Sequence[float] = (),
    method: str | None = None,
) -> pd.DataFrame:
    """See :meth:`~seqforecast.predict.forecaster.Forecaster.forecast_table`."""
    s, n, k = _settings(forecaster.data), forecaster.n_steps, forecaster.horizon
    name = "request" if isinstance(source, pd.DataFrame) else str(source)
    path = Path("request.csv") if isinstance(source, pd.DataFrame) else Path(source)
    frame = source.reset_index(drop=True) if isinstance(source, pd.DataFrame) else read_frame(path)
    columns = [s["target"], *s["inputs"], *s["future"]]
    trained = [*s["ids"], *([s["time"]] if s["time"] else []), *columns]
    have = [str(c) for c in frame.columns]
    missing = [c for c in trained if c not in have]
    if missing:
        raise InputError(
            f"input {name} has columns {have}, but this model was trained on columns "
            f"{trained} (missing {missing})"
        )
    history, future = split_future(frame, s["target"], s["ids"])
    panel = load_panel(path, columns, s["time"], s["fill"], s["ids"], frame=history)
    _check_future_ids(future, panel.keys, s["ids"], name)
    index = _series_index(forecaster, panel.keys, s["ids"], name)
    rows, stamps, recents = [], [], []
    for i, key in enumerate(panel.keys):
        label = f"series {series_label(s['ids'], key)}" if s["ids"] else name
        recent = panel.rows(i)[-n:]  # [<=n, F]
        if len(recent) < n:
            raise InputError(
                f"input {label} has {len(recent)} usable rows; the model needs the last "
                f"n_steps = {n}"
            )
        recents.append(recent[:, 0])  # [T], the target in the data's units (the figure)
        forecaster.scaler.target.check(
            recent[:, 0], f"input {label}: the target column {s['target']!r}", _row(len(recent))
        )
        times = None if panel.times is None else panel.times[i]
        ahead_rows = _future_rows(
            future.get(key, frame.iloc[:0]), s, label, k if s["future"] else 0
        )
        stamps.append(_timestamps(times, ahead_rows, s["time"], max(ahead, k), label))
        block = np.zeros((n + k, len(columns)), np.float32)  # [n + k, F]: history, then future
        block[:n] = recent
        block[n:, 0] = recent[-1, 0]  # unread by the model; a value the target transform takes
        if s["future"]:
            block[n:, 1 + len(s["inputs"]) :] = ahead_rows[s["future"]].to_numpy(np.float32)[:k]
        if s["calendar"]:
            when = pd.concat([times.iloc[-n:], stamps[-1][:k]], ignore_index=True)
            block = np.concatenate([block, calendar_features(when, s["calendar"], s["time"])], 1)
        rows.append(forecaster.scaler.transform(block, None if index is None else index[i]))
    x = _windows(forecaster, rows, s)  # [S, n, F']
    bounds = None
    if levels:
        point, bounds = forecaster.predict_intervals(
            x, ahead, levels, method, series=index
        )  # [S, a, L, 2]
    else:
        point = forecaster.predict(x, ahead, window, series=index)  # [S, a]
    forecaster.last_history = np.stack(recents)  # [S, T]
    return _long(forecaster, s, panel.keys, index, stamps, point, bounds, levels, ahead)


def _row(n: int):
    """A history row's name in errors: its place among the last ``n`` rows."""
    return lambda i: f"row {i + 1} of the last n_steps = {n} rows"


def _check_future_ids(
    future: dict[tuple[str, ...], pd.DataFrame],
    keys: list[tuple[str, ...]],
    ids: list[str],
    name: str,
) -> None:
    """Future rows belong to a series of the table: rows of an id without history (no row
    with a target) would otherwise be left out of the forecast without a word."""
    known = {tuple(k) for k in keys}
    orphans = [series_label(ids, k) for k in future if tuple(k) not in known]
    if orphans:
        raise InputError(
            f"input {name}: future rows (target empty) for series {_few(orphans)}, which "
            "have no rows with the target; each series to forecast needs its history in the table"
        )


def _few(labels: list[str]) -> str:
    """The first five ``labels`` as a list, ``...`` after them when there are more."""
    return f"{labels[:5]}{' ...' if len(labels) > 5 else ''}"


def _series_index(
    forecaster: Forecaster, keys: list[tuple[str, ...]], ids: list[str], name: str
) -> np.ndarray | None:
    """Each series' row of the per-series scaling (``None``: scaled globally); an id the
    model was not trained on is refused by name."""
    if not forecaster.scaler.per_series:
        return None
    known = {tuple(k): j for j, k in enumerate(forecaster.series or [])}
    unknown = [series_label(ids, k) for k in keys if tuple(k) not in known]
    if unknown:
        raise InputError(
            f"input {name}: series {_few(unknown)} were not among the {len(known)} series "
            "this model was trained on (data.scaling_scope=series keeps each series' own "
            "scaling); forecast known ids, or train with data.scaling_scope=global"
        )
    return np.array([known[tuple(k)] for k in keys])


def _future_rows(rows: pd.DataFrame, s: dict[str, Any], label: str, need: int) -> pd.DataFrame:
    """A series' future ``rows``; with future inputs, ``need`` of them, numbers throughout."""
    if not need:
        return rows
    values = rows[s["future"]].apply(pd.to_numeric, errors="coerce").iloc[:need]
    if len(values) < need or not np.isfinite(values.to_numpy(np.float64)).all():
        got = int(np.isfinite(values.to_numpy(np.float64)).all(axis=1).sum())
        raise InputError(
            f"input {label}: the future inputs {s['future']} are needed for the {need} rows "
            f"after the last target (rows with the target empty), found {got} complete ones"
        )
    return rows


def _timestamps(
    times: pd.Series | None,
    future: pd.DataFrame,
    column: str | None,
    count: int,
    label: str,
) -> pd.Series | None:
    """``count`` future timestamps: the future rows' own, else from the series' spacing."""
    if times is None:
        return None
    given = future[column] if len(future) >= count else None
    if given is not None:
        parsed = pd.to_datetime(given) if pd.api.types.is_datetime64_any_dtype(times) else given
        return pd.Series(parsed.to_numpy()[:count])
    try:
        return future_times(times, count, column)
    except InputError as err:
        raise InputError(f"input {label}: {err}") from None


def _windows(forecaster: Forecaster, rows: list[np.ndarray], s: dict[str, Any]) -> np.ndarray:
    """Each series' window ``[S, n, F']``, with the known-future features of its horizon."""
    n, k = forecaster.n_steps, forecaster.horizon
    width = rows[0].shape[1]
    future = range(1 + len(s["inputs"]), width) if (s["future"] or s["calendar"]) else ()
    starts = np.arange(len(rows)) * (n + k)
    windows = Windows(np.concatenate(rows), starts + n - 1, [1] * len(rows), n, k, "next", future)
    return windows[:][0].numpy()


def _long(
    forecaster: Forecaster,
    s: dict[str, Any],
    keys: list[tuple[str, ...]],
    index: np.ndarray | None,
    stamps: list[pd.Series | None],
    point: np.ndarray,
    bounds: np.ndarray | None,
    levels: Sequence[float],
    ahead: int,
) -> pd.DataFrame:
    """One row per series and step: ids, ``step``, time, the target and ``lo-L``/``hi-L``."""
    result: dict[str, Any] = {
        c: np.repeat([k[j] for k in keys], ahead) for j, c in enumerate(s["ids"])
    }
    result["step"] = np.tile(np.arange(1, ahead + 1), len(keys))
    if s["time"] and all(t is not None for t in stamps):
        result[s["time"]] = np.concatenate([t.to_numpy()[:ahead] for t in stamps])
    units = forecaster.to_units(point, bounds, sorted(levels), index)  # [S, a] each
    return pd.DataFrame({**result, **{c: v.ravel() for c, v in units.items()}})

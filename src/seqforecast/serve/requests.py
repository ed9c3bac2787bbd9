"""A ``POST /predict`` body checked and turned into a :class:`Job` (numpy windows or a table).

The checks here need only the model's facts (:func:`model_facts`, a plain dict), not the
network, so a bad request is refused before it reaches a batch. Each refusal is one
:class:`~seqforecast.errors.InputError` line naming the field and what is expected. Checks
that need the data pipeline (a table's columns, spacing, series ids) stay with
``Forecaster.forecast_table`` and come back as its own errors.
"""

from __future__ import annotations

import contextlib
import json
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from seqforecast.data.table import FLOAT32_MAX
from seqforecast.errors import ConfigError, InputError
from seqforecast.forecast import MAX_AHEAD, check_ahead, check_direct
from seqforecast.rules import INTERVALS, LEVELS, check_value

if TYPE_CHECKING:
    import pandas as pd

    from seqforecast.predict.forecaster import Forecaster

FIELDS = ("windows", "rows", "ahead", "levels", "intervals", "window")


class TooMuchWork(InputError):
    """A request over the service's work budget (:class:`Limits`): answered 413."""


@dataclass(frozen=True)
class Limits:
    """The most work one request may ask for, so that no request holds a worker long.

    Time grows with the forward passes (``windows x ceil(ahead / horizon)``: an iterative
    forecast runs one pass per ``horizon`` steps) and the answer's size with its numbers
    (``windows x ahead x (1 + 2 x levels)``: forecasts and two bounds per level). A ``rows``
    request counts ``len(rows) // n_steps`` windows (each series needs ``n_steps`` rows).
    """

    max_ahead: int = MAX_AHEAD
    max_passes: int = 2500
    max_values: int = 250_000
    max_levels: int = 20


@dataclass
class Job:
    """One request, checked: ``x [N, T, F]`` float32 windows, or ``rows`` (a table)."""

    ahead: int
    levels: tuple[float, ...]  # () when no intervals are asked for
    method: str | None  # the interval method; None: the checkpoint's
    window: str  # iterative feed: sliding | growing
    x: np.ndarray | None = None
    rows: pd.DataFrame | None = None
    deadline: float = float("inf")  # time.monotonic() past which it gets a 504

    @property
    def key(self) -> tuple:
        """Requests with equal keys share one forward pass (windows only)."""
        return (self.ahead, self.levels, self.method, self.window)


def model_facts(forecaster: Forecaster) -> dict[str, Any]:
    """What a client (``GET /health``) and the request checks need to know about the model."""
    data = forecaster.data or {}
    calibration = forecaster.calibration
    facts = {
        "net": forecaster.hparams["net"],
        "target": forecaster.target,
        "n_steps": forecaster.n_steps,
        "horizon": forecaster.horizon,
        "n_features": forecaster.n_features,
        "levels": forecaster.levels,
        "intervals": calibration.method if calibration else None,
        "file_data": forecaster.file_data,
    }
    if forecaster.file_data:
        ids = data.get("id") or []
        facts["columns"] = {
            "time": data.get("time"),
            "target": data["target_column"],
            "inputs": list(data.get("inputs") or []),
            "future_inputs": list(data.get("future_inputs") or []),
            "id": [ids] if isinstance(ids, str) else list(ids),
        }
    return facts


def _int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _short(value: Any) -> str:
    """A JSON value for a one-line message: integers too long to print by their digits."""
    if _int(value) and abs(value) >= 10**15:
        return f"an integer of {len(str(abs(value)))} digits"
    return json.dumps(value)[:60]


def parse_ahead(body: dict[str, Any], facts: dict[str, Any], max_ahead: int) -> int:
    """``ahead``: an integer from 1 to ``max_ahead`` (default: the model's horizon), with
    ``window`` (default ``sliding``) by the forecasters' own rule (:func:`check_ahead`)."""
    ahead = body.get("ahead", facts["horizon"])
    check_ahead(ahead, body.get("window", "sliding"), facts["horizon"], facts["n_features"])
    if ahead > max_ahead:
        raise InputError(f"ahead={_short(ahead)} exceeds this service's max_ahead={max_ahead}")
    return ahead


def parse_levels(
    body: dict[str, Any], facts: dict[str, Any], ahead: int, max_levels: int = 20
) -> tuple[float, ...]:
    """``levels`` in percent, at most ``max_levels``; absent or null: the checkpoint's for a
    direct forecast, none for an iterative one (intervals are calibrated for the direct
    steps only)."""
    levels = body.get("levels")
    if levels is None:
        return tuple(facts["levels"]) if ahead <= facts["horizon"] else ()
    if isinstance(levels, list) and len(levels) > max_levels:
        raise InputError(
            f"levels has {len(levels)} values; this service answers at most "
            f"max_levels={max_levels} per request"
        )
    for i, v in enumerate(levels if isinstance(levels, list) else ()):
        if _int(v) and abs(v) >= 10**15:
            raise InputError(f"levels[{i}] is {_short(v)}; expected a percentage in (0, 100)")
    check_value("levels", levels, LEVELS)
    if levels:
        check_direct(ahead, facts["horizon"], levels)
    return tuple(sorted(float(v) for v in levels))


def _first_non_number(value: Any, where: str = "") -> tuple[str, str]:
    """Where the first value that is not a number sits in nested lists, and what it is."""
    if isinstance(value, list):
        for i, item in enumerate(value):
            found = _first_non_number(item, f"{where}[{i}]")
            if found[1]:
                return found
        return where, ""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return where, "null" if value is None else f"{json.dumps(value)}"
    if isinstance(value, int) and abs(value) > FLOAT32_MAX:  # numpy keeps it a Python int
        return where, _short(value)
    return where, ""


def _at(value: Any, where: str) -> Any:
    """The item of nested lists at ``where`` (``"[i][j]"``)."""
    for i in where.strip("[]").split("]["):
        value = value[int(i)] if i else value
    return value


def _holds_bool(windows: list, ndim: int) -> bool:
    if ndim == 2:
        return any(type(v) is bool for row in windows for v in row)
    return ndim == 3 and any(type(v) is bool for row in windows for step in row for v in step)


def parse_windows(windows: Any, facts: dict[str, Any]) -> np.ndarray:
    """``[[...], ...]`` (univariate) or ``[[[f, ...], ...], ...]`` -> float32 ``[N, T, F]``."""
    t, f = facts["n_steps"], facts["n_features"]
    expected = f"[n_series, {t}, {f}]" if f > 1 else f"[n_series, {t}] or [n_series, {t}, 1]"
    if not isinstance(windows, list) or not windows:
        raise InputError(f"windows must be a non-empty list shaped {expected}")
    try:
        x = np.asarray(windows)
    except ValueError:  # ragged nesting
        raise InputError(
            f"windows are ragged (lists of different lengths); expected {expected}"
        ) from None
    if x.dtype.kind == "O" and not _first_non_number(windows)[1]:  # integers past int64
        with contextlib.suppress(OverflowError):  # past float64 too: refused just below
            x = np.asarray(windows, dtype=np.float64)
    if x.dtype.kind not in "iuf" or _holds_bool(windows, x.ndim):  # numpy reads true as 1.0
        where, value = _first_non_number(windows)
        if _int(_at(windows, where)):  # an integer beyond float64's range
            raise InputError(
                f"windows{where} is {value}: expected finite numbers within float32's range"
            )
        raise InputError(f"windows{where} is {value}; expected numbers shaped {expected}")
    if x.ndim == 2:
        x = x[..., np.newaxis]  # [N, T] -> [N, T, 1]
    if x.ndim != 3 or x.shape[1] != t or x.shape[2] != f:
        shape = list(np.shape(windows))
        raise InputError(f"windows have shape {shape}; this model expects {expected}")
    bad = ~np.isfinite(x) | (np.abs(x) > FLOAT32_MAX)
    if bad.any():
        i, j, k = (int(v) for v in np.argwhere(bad)[0])
        at = f"[{i}][{j}]" if np.ndim(windows[0][0]) == 0 else f"[{i}][{j}][{k}]"
        value = float(x[i, j, k])
        what = "NaN" if math.isnan(value) else f"{value:g}"
        raise InputError(f"windows{at} is {what}: expected finite numbers within float32's range")
    return x.astype(np.float32)


def parse_rows(rows: Any, facts: dict[str, Any]) -> pd.DataFrame:
    """``[{"date": ..., "value": ...}, ...]`` -> a DataFrame of the table's rows (file-trained
    models only). ``null`` marks a missing value (the training ``data.fill`` rule applies)."""
    import pandas as pd

    if not facts["file_data"]:
        raise InputError(
            "rows are for models trained on a file (data=csv); this model takes windows"
        )
    if not isinstance(rows, list) or not rows or not all(isinstance(r, dict) for r in rows):
        raise InputError("rows must be a non-empty list of objects, one per table row")
    for i, row in enumerate(rows):
        for name, value in row.items():
            if isinstance(value, float) and not math.isfinite(value):
                raise InputError(
                    f"rows[{i}][{name!r}] is {value!r}, which JSON does not allow; "
                    "send null for a missing value"
                )
            if isinstance(value, list | dict):
                kind = type(value).__name__
                raise InputError(f"rows[{i}][{name!r}] is a {kind}; expected one value")
    return pd.DataFrame.from_records(rows)


def parse_request(body: Any, facts: dict[str, Any], limits: Limits = Limits()) -> Job:
    """Check a decoded JSON body against the model's ``facts`` and the service's ``limits``;
    one :class:`InputError` line when it does not fit (the shared rules' :class:`ConfigError`
    included: here a bad value comes with the request), :class:`TooMuchWork` when it asks for
    more than the budget."""
    try:
        job = _parse(body, facts, limits)
    except ConfigError as err:
        raise InputError(str(err)) from None
    check_work(job, facts, limits)
    return job


def check_work(job: Job, facts: dict[str, Any], limits: Limits) -> None:
    """The request's passes and answer numbers within ``limits`` (:class:`TooMuchWork`)."""
    n = len(job.x) if job.x is not None else max(1, len(job.rows) // facts["n_steps"])
    what = f"{n} windows" if job.x is not None else f"{len(job.rows)} rows (~{n} series)"
    passes = n * -(-job.ahead // facts["horizon"])
    values = n * job.ahead * (1 + 2 * len(job.levels))
    if passes > limits.max_passes:
        raise TooMuchWork(
            f"{what} x ahead={job.ahead} need {passes} forward passes (windows x "
            f"ceil(ahead / horizon={facts['horizon']})); this service allows "
            f"max_passes={limits.max_passes} per request: send fewer windows or a shorter ahead"
        )
    if values > limits.max_values:
        raise TooMuchWork(
            f"{what} x ahead={job.ahead} x (1 + 2 x {len(job.levels)} levels) = {values} numbers "
            f"to answer; this service allows max_values={limits.max_values} per request: send "
            "fewer windows or levels"
        )


def _parse(body: Any, facts: dict[str, Any], limits: Limits) -> Job:
    if not isinstance(body, dict):
        raise InputError(f"the request body must be a JSON object, got {type(body).__name__}")
    unknown = sorted(set(body) - set(FIELDS))
    if unknown:
        raise InputError(f"unknown request fields {unknown}; expected some of {list(FIELDS)}")
    if ("windows" in body) == ("rows" in body):
        raise InputError("send exactly one of 'windows' (arrays) or 'rows' (a table's rows)")
    ahead = parse_ahead(body, facts, limits.max_ahead)
    levels = parse_levels(body, facts, ahead, limits.max_levels)
    method = body.get("intervals")
    if method is not None and method not in INTERVALS:
        raise InputError(f"intervals must be one of {list(INTERVALS)}, got {method!r}")
    job = Job(ahead, levels, method, body.get("window", "sliding"))  # window checked with ahead
    if "windows" in body:
        job.x = parse_windows(body["windows"], facts)
    else:
        job.rows = parse_rows(body["rows"], facts)
    return job

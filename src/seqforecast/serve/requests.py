"""A ``POST /predict`` body: :class:`PredictRequest` (pydantic) checked into a :class:`Job`.

The service's endpoint takes a :class:`PredictRequest`, so FastAPI validates each body in the
HTTP process and publishes the schema (``/openapi.json``, ``/docs``); :func:`refusal` words
its first error as the one line the service answers. What needs the model's facts
(:func:`model_facts`, a plain dict, not the network: window shapes, ``ahead`` against the
horizon, the work budget) is checked by :func:`parse_request`, so a bad request is refused
before it reaches a batch. Checks that need the data pipeline (a table's columns, spacing,
series ids) stay with ``Forecaster.forecast_table`` and come back as its own errors.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic_core import PydanticCustomError

from seqforecast.core import MAX_AHEAD, WINDOWS, check_ahead, check_direct
from seqforecast.data.table import FLOAT32_MAX
from seqforecast.errors import ConfigError, InputError
from seqforecast.rules import INTERVALS, LEVELS, check_value

if TYPE_CHECKING:
    import pandas as pd

    from seqforecast.predict.forecaster import Forecaster

In100 = Field(gt=0, lt=100)
FIELDS = ["windows", "rows", "ahead", "levels", "intervals", "window"]  # as messages list them
ROWS_FOR_FILES = "rows are for models trained on a file (data=csv); this model takes windows"
FINITE = ("finite_number", "greater_than_equal", "less_than_equal")  # pydantic's error types
Number = Annotated[float, Field(allow_inf_nan=False, ge=-FLOAT32_MAX, le=FLOAT32_MAX)]
Cell = str | bool | int | Annotated[float, Field(allow_inf_nan=False)] | None  # a row's value
Percent = Annotated[int, In100] | Annotated[float, In100]  # ints stay ints: messages echo them


class PredictRequest(BaseModel):
    """The body of ``POST /predict``: ``windows`` or ``rows``, and how to forecast them.

    Fields are declared in the order the service checks them (how to forecast, then the
    data), so a body with several faults is refused for the first in that order."""

    model_config = ConfigDict(strict=True, extra="forbid")  # JSON types: no "3" for 3

    ahead: int = Field(None, ge=1, description="steps to forecast; default: the horizon")
    window: Literal[WINDOWS] = "sliding"  # type: ignore[valid-type]
    levels: list[Percent] | None = Field(None, description="interval levels in percent")
    intervals: Literal[INTERVALS] | None = None  # type: ignore[valid-type]
    windows: list[list[Number | list[Number]]] | None = Field(
        None, description="[n_series][n_steps] or [n_series][n_steps][n_features] numbers"
    )
    rows: list[dict[str, Cell]] | None = Field(None, description="a table's rows, as objects")

    @model_validator(mode="before")
    @classmethod
    def _fields(cls, body: Any) -> Any:
        """Known fields, and ``windows`` or ``rows``: checked before any field's value."""
        if not isinstance(body, dict):
            return body  # refused as a model_type error
        unknown = sorted(set(body) - set(FIELDS))
        if unknown:
            message = f"unknown request fields {unknown}; expected some of {FIELDS}"
        elif ("windows" in body) == ("rows" in body):
            message = "send exactly one of 'windows' (arrays) or 'rows' (a table's rows)"
        else:
            return body
        raise PydanticCustomError("request", "{message}", {"message": message})


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


def _short(value: Any) -> str:
    """A JSON value for a one-line message: integers too long to print by their digits."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10**15:
        return f"an integer of {len(str(abs(value)))} digits"
    return json.dumps(value)[:60]


def _expected(facts: dict[str, Any]) -> str:
    t, f = facts["n_steps"], facts["n_features"]
    return f"[n_series, {t}, {f}]" if f > 1 else f"[n_series, {t}] or [n_series, {t}, 1]"


def refusal(errors: list[dict[str, Any]], body: Any, facts: dict[str, Any]) -> str:
    """The one line for a body that :class:`PredictRequest` refuses (pydantic's ``errors()``,
    their ``loc`` without FastAPI's ``"body"``): its first field's deepest error, naming the
    field, the item (``windows[0][2]``) and what is expected."""
    first = [e for e in errors if e["loc"][:1] == errors[0]["loc"][:1]]
    error = max(first, key=lambda e: len(e["loc"]))  # in a union, the branch that got furthest
    loc, value, kind = error["loc"], error["input"], error["type"]
    field, at = (loc or ("",))[0], "".join(f"[{i}]" for i in loc[1:] if isinstance(i, int))
    big = _short(value).startswith("an integer")
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if not field:
        if kind == "model_type":
            return f"the request body must be a JSON object, got {type(value).__name__}"
        return error["msg"]  # PredictRequest._fields
    if field == "ahead":
        return f"ahead must be an integer >= 1, got {value!r}"
    if field in ("window", "intervals"):
        choices = list(WINDOWS if field == "window" else INTERVALS)
        return f"{field} must be one of {choices}, got {value!r}"
    if field == "levels" and at and big:
        return f"levels{at} is {_short(value)}; expected a percentage in (0, 100)"
    if field == "levels":
        return f"levels={body['levels']!r} is not allowed: expected {LEVELS.allowed}"
    if field == "windows" and (big or kind in FINITE):
        what = _short(value) if big else "NaN" if value != value else f"{float(value):g}"
        return f"windows{at} is {what}: expected finite numbers within float32's range"
    if field == "windows" and at and not (number or isinstance(value, list)):
        return f"windows{at} is {_short(value)}; expected numbers shaped {_expected(facts)}"
    if field == "windows":  # not a list, or numbers nested too deep or too flat
        return _shape_error(body["windows"], facts)
    if not facts["file_data"]:
        return ROWS_FOR_FILES
    if len(loc) < 3:
        return "rows must be a non-empty list of objects, one per table row"
    where = f"rows{at}[{loc[2]!r}]"
    if isinstance(value, float):  # refused for being NaN or infinite
        return f"{where} is {value!r}, which JSON does not allow; send null for a missing value"
    return f"{where} is a {type(value).__name__}; expected one value"


def _shape_error(windows: Any, facts: dict[str, Any]) -> str:
    """Why ``windows`` (numbers, no NaN) do not make ``[n_series, n_steps, n_features]``."""
    if not windows or not isinstance(windows, list):
        return f"windows must be a non-empty list shaped {_expected(facts)}"
    try:
        shape = list(np.shape(windows))
    except ValueError:  # lists of different lengths
        return f"windows are ragged (lists of different lengths); expected {_expected(facts)}"
    return f"windows have shape {shape}; this model expects {_expected(facts)}"


def parse_windows(windows: list | None, facts: dict[str, Any]) -> np.ndarray:
    """``[[...], ...]`` (univariate) or ``[[[f, ...], ...], ...]`` -> float32 ``[N, T, F]``
    (numbers checked by :class:`PredictRequest`; the shape here, against the model's)."""
    try:
        x = np.asarray(windows, dtype=np.float64) if windows else None
    except ValueError:  # ragged nesting
        x = None
    if x is not None and x.ndim == 2:
        x = x[..., np.newaxis]  # [N, T] -> [N, T, 1]
    if x is None or x.shape[1:] != (facts["n_steps"], facts["n_features"]):
        raise InputError(_shape_error(windows, facts))
    return x.astype(np.float32)


def parse_rows(rows: list[dict] | None, facts: dict[str, Any]) -> pd.DataFrame:
    """``[{"date": ..., "value": ...}, ...]`` -> a DataFrame of the table's rows (file-trained
    models only). ``null`` marks a missing value (the training ``data.fill`` rule applies)."""
    import pandas as pd

    if not facts["file_data"]:
        raise InputError(ROWS_FOR_FILES)
    if not rows:
        raise InputError("rows must be a non-empty list of objects, one per table row")
    return pd.DataFrame.from_records(rows)


def parse_request(body: Any, facts: dict[str, Any], limits: Limits = Limits()) -> Job:
    """Check a decoded JSON body (or a :class:`PredictRequest`) against the model's ``facts``
    and the service's ``limits``; one :class:`InputError` line when it does not fit (the
    shared rules' :class:`ConfigError` included: here a bad value comes with the request),
    :class:`TooMuchWork` when it asks for more than the budget."""
    try:
        job = _job(PredictRequest.model_validate(body), facts, limits)
    except ValidationError as err:
        raise InputError(refusal(err.errors(), body, facts)) from None
    except ConfigError as err:
        raise InputError(str(err)) from None
    check_work(job, facts, limits)
    return job


def _job(request: PredictRequest, facts: dict[str, Any], limits: Limits) -> Job:
    """The checks that need the model's facts and the service's limits."""
    r, horizon = request, facts["horizon"]
    ahead = horizon if "ahead" not in r.model_fields_set else r.ahead
    check_ahead(ahead, r.window, horizon, facts["n_features"])
    if ahead > limits.max_ahead:
        raise InputError(
            f"ahead={_short(ahead)} exceeds this service's max_ahead={limits.max_ahead}"
        )
    if r.levels is None:  # the checkpoint's, for a direct forecast
        levels = tuple(facts["levels"]) if ahead <= horizon else ()
    elif len(r.levels) > limits.max_levels:
        raise InputError(
            f"levels has {len(r.levels)} values; this service answers at most "
            f"max_levels={limits.max_levels} per request"
        )
    else:
        check_value("levels", r.levels, LEVELS)  # distinct
        if r.levels:
            check_direct(ahead, horizon, r.levels)
        levels = tuple(sorted(float(v) for v in r.levels))
    job = Job(ahead, levels, r.intervals, r.window)
    if "windows" in r.model_fields_set:
        job.x = parse_windows(r.windows, facts)
    else:
        job.rows = parse_rows(r.rows, facts)
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

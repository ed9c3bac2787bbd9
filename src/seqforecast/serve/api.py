"""``ForecastAPI``: the LitServe API that answers ``POST /predict`` from a checkpoint.

LitServe gathers up to ``max_batch_size`` requests (waiting at most ``batch_timeout``) and
hands them to one worker call. A bad request must not sink the batch it arrived with, so no
step here raises for one request: :meth:`decode_request` turns a refusal into a
:class:`Refusal`, :meth:`predict` runs each group of window requests that can share a
forward pass (same ``ahead``, levels, interval method and window) as one call and falls back
to one call per request when a group fails, and :meth:`encode_response` gives each refusal
its own answer: 422 and the one-line message of a project error (413 for a request over the
work budget, :class:`~.requests.Limits`), 500 for anything else.

Each request gets a deadline ``timeout`` seconds after the worker takes it up; windows are
forecast :data:`CHUNK` at a time and the deadline is checked before each chunk, so a request
that would run past it stops there and gets a 504 of its own (the HTTP side also answers 504
once a request has waited ``timeout`` seconds in all: :class:`~.app.Deadline`).
"""

import logging
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import litserve as ls
import numpy as np
from fastapi.responses import JSONResponse

from seqforecast.errors import SeqforecastError
from seqforecast.scores import level_name
from seqforecast.serve.requests import (
    Job,
    Limits,
    PredictRequest,
    TooMuchWork,
    model_facts,
    parse_request,
)

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)
CHUNK = 512  # windows per forecast call: the deadline is checked between calls


class Overdue(Exception):
    """A request's deadline passed before its forecast was done (answered 504)."""


@dataclass
class Refusal:
    """A request answered with ``status`` and ``{"error": message}`` instead of a forecast."""

    status: int
    message: str


def _device(device: str) -> str:
    """LitServe's ``cpu`` / ``cuda:N`` as ``load_forecaster``'s device (the index made current)."""
    if device.startswith("cuda"):
        import torch

        torch.cuda.set_device(torch.device(device))
        return "cuda"
    return "cpu"


def _list(values: Any) -> list:
    """An array as JSON lists; a non-finite value (an unbounded interval: too few
    calibration values for its level) becomes null, which JSON can carry."""
    values = np.asarray(values)
    if np.isfinite(values).all():
        return values.tolist()
    return np.where(np.isfinite(values), values, None).tolist()


def _timestamps(times: "pd.Series") -> list:
    """Future times as JSON values: dates as ``YYYY-MM-DD`` when they all fall on midnight,
    else ISO 8601 date-times; numbers as numbers."""
    import pandas as pd

    if not pd.api.types.is_datetime64_any_dtype(times):
        return times.tolist()
    stamps = pd.DatetimeIndex(times)
    if (stamps == stamps.normalize()).all():
        return list(stamps.strftime("%Y-%m-%d"))
    return [t.isoformat() for t in stamps]


class ForecastAPI(ls.LitAPI):
    """Forecasts from the checkpoint ``ckpt_path`` (loaded once per worker in :meth:`setup`)."""

    def __init__(
        self,
        ckpt_path: str,
        layers: str = "fast",
        limits: Limits | None = None,
        timeout: float = 30.0,
        **kw: Any,
    ):
        super().__init__(**kw)
        self.ckpt_path, self.layers, self.timeout = ckpt_path, layers, timeout
        self.limits = limits or Limits()

    def setup(self, device: str) -> None:
        from tqdm import tqdm

        from seqforecast.predict import load_forecaster

        # tqdm's default lock includes a multiprocessing one (a named semaphore, in this
        # spawned process); LitServe stops workers with SIGTERM, which leaves it behind and
        # makes the resource tracker warn at exit. No progress bars run here: a thread lock.
        tqdm.set_lock(threading.RLock())

        self.forecaster = load_forecaster(self.ckpt_path, _device(device), self.layers)
        self.facts = model_facts(self.forecaster)
        self.calibrations: dict[tuple, Any] = {}  # (levels, method) -> Calibration

    def decode_request(self, request: PredictRequest) -> Job | Refusal:
        # The annotation (an object: no ``from __future__ import annotations`` here) makes
        # LitServe's endpoint take a PredictRequest, which FastAPI checks before the request
        # is queued (:mod:`.app`); here only the checks that need the model.
        job = self._answer(lambda body: parse_request(body, self.facts, self.limits), request)
        if isinstance(job, Job):
            job.deadline = time.monotonic() + self.timeout
        return job

    def batch(self, inputs: list[Job | Refusal]) -> list[Job | Refusal]:
        return inputs  # grouped in predict: requests differ in ahead, levels and size

    def predict(self, jobs: list[Job | Refusal]) -> list[dict | Refusal]:
        """One answer per request, in order: window requests grouped, rows one by one."""
        answers: list[dict | Refusal | None] = [j if isinstance(j, Refusal) else None for j in jobs]
        groups: dict[tuple, list[int]] = {}
        for i, job in enumerate(jobs):
            if isinstance(job, Job) and job.x is not None:
                groups.setdefault(job.key, []).append(i)
            elif isinstance(job, Job):
                answers[i] = self._answer(self._rows, job)
        # Least work (windows x ahead) first, so that a heavy group sharing the batch cannot
        # spend the deadline of the light ones.
        cost = {key: key[0] * sum(len(jobs[i].x) for i in m) for key, m in groups.items()}
        for key in sorted(groups, key=cost.__getitem__):
            members = groups[key]
            for i, answer in zip(members, self._group([jobs[i] for i in members]), strict=True):
                answers[i] = answer
        return answers

    def unbatch(self, output: list[dict | Refusal]) -> list[dict | Refusal]:
        return output

    def encode_response(self, output: dict | Refusal) -> JSONResponse:
        if isinstance(output, Refusal):
            return JSONResponse({"error": output.message}, status_code=output.status)
        return JSONResponse(output)

    def _answer(self, run: Any, arg: Any) -> Any:
        """``run(arg)``; a project error it raises is the request's 422, anything else a 500
        for this request alone (logged with its traceback), not for the whole batch."""
        try:
            return run(arg)
        except Overdue:
            return Refusal(504, f"the forecast did not finish within timeout={self.timeout:g} s")
        except TooMuchWork as err:
            return Refusal(413, str(err))
        except SeqforecastError as err:
            return Refusal(422, str(err))
        except Exception as err:
            log.exception("forecasting a request failed")
            return Refusal(500, f"internal error ({type(err).__name__}); see the server log")

    def _group(self, jobs: list[Job]) -> list[dict | Refusal]:
        """Window requests that share a key in one pass; when that fails, one pass each, so
        only the request at fault is refused."""
        merged = self._answer(self._windows, jobs)
        if not isinstance(merged, Refusal):
            return merged
        if len(jobs) == 1 or merged.status == 504:  # out of time: no time to rerun them
            return [merged]
        alone = (self._answer(self._windows, [job]) for job in jobs)
        return [a if isinstance(a, Refusal) else a[0] for a in alone]

    def _calibration(self, job: Job) -> Any:
        key = (job.levels, job.method)
        if key not in self.calibrations:
            self.calibrations[key] = self.forecaster.calibration_for(list(job.levels), job.method)
        return self.calibrations[key]

    def _windows(self, jobs: list[Job]) -> list[dict]:
        """Requests of one group in one forward pass: ``x [sum N_i, T, F]``, split back."""
        job, f = jobs[0], self.forecaster
        x = np.concatenate([j.x for j in jobs]) if len(jobs) > 1 else job.x  # [N, T, F]
        deadline = min(j.deadline for j in jobs)
        bounds, levels = None, ()
        if job.levels:
            calibration = self._calibration(job)
            levels = tuple(calibration.levels)
            parts = [
                f.predict_intervals(chunk, job.ahead, calibration=calibration)
                for chunk in _chunks(x, deadline)
            ]
            point = np.concatenate([p for p, _ in parts])  # [N, ahead]
            bounds = np.concatenate([b for _, b in parts])  # [N, ahead, L, 2]
        else:
            parts = [f.predict(chunk, job.ahead, job.window) for chunk in _chunks(x, deadline)]
            point = np.concatenate(parts)  # [N, ahead]
        base = {"method": f.method(job.ahead, job.window), "ahead": job.ahead}
        answers, lo = [], 0
        for j in jobs:
            hi = lo + len(j.x)
            answer = {**base, "forecasts": _list(point[lo:hi]), "levels": list(levels)}
            if bounds is not None:  # [N, ahead, L, 2]
                answer["intervals"] = {
                    level_name(v): {
                        "lo": _list(bounds[lo:hi, :, i, 0]),
                        "hi": _list(bounds[lo:hi, :, i, 1]),
                    }
                    for i, v in enumerate(levels)
                }
            answers.append(answer)
            lo = hi
        return answers

    def _rows(self, job: Job) -> dict:
        """A table's rows: ``forecast_table`` past its end, in the data's units."""
        f, columns = self.forecaster, self.facts["columns"]
        if time.monotonic() > job.deadline:
            raise Overdue
        table = f.forecast_table(job.rows, job.ahead, job.window, job.levels, job.method)
        ids = [c for c in columns["id"] if c in table.columns]
        series = [table] if not ids else [g for _, g in table.groupby(ids, sort=False)]
        answer: dict[str, Any] = {
            "method": f.method(job.ahead, job.window),
            "ahead": job.ahead,
            "forecasts": [_list(s[columns["target"]]) for s in series],
            "levels": list(job.levels),
        }
        if ids:
            answer["ids"] = [{c: _plain(s[c].iloc[0]) for c in ids} for s in series]
        if columns["time"] and columns["time"] in table.columns:
            answer["timestamps"] = [_timestamps(s[columns["time"]]) for s in series]
        if job.levels:
            answer["intervals"] = {
                (name := level_name(v)): {
                    side: [_list(s[f"{side}-{name}"]) for s in series] for side in ("lo", "hi")
                }
                for v in job.levels
            }
        return answer


def _chunks(x: np.ndarray, deadline: float) -> Any:
    """``x [N, T, F]`` :data:`CHUNK` windows at a time, :class:`Overdue` past ``deadline``."""
    for lo in range(0, len(x), CHUNK):
        if time.monotonic() > deadline:
            raise Overdue
        yield x[lo : lo + CHUNK]


def _plain(value: Any) -> Any:
    """A pandas/numpy scalar as a JSON value."""
    return value.item() if hasattr(value, "item") else value


def health_facts(ckpt_path: str, layers: str = "fast") -> dict[str, Any]:
    """The model's facts for ``GET /health``, read once in the HTTP process (on the CPU)."""
    from seqforecast.predict import load_forecaster

    return model_facts(load_forecaster(ckpt_path, "cpu", layers))

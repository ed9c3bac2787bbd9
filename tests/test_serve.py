"""The HTTP service: request checks (quick), the batching API in-process, the real server.

The server tests start ``scripts/serve.py`` on a free localhost port, call it over HTTP and
compare every answer with ``load_forecaster`` in this process.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import compose_cfg, scaled_tol, script_command, script_env

from seqforecast import load_forecaster
from seqforecast.data.example import write_example
from seqforecast.errors import InputError
from seqforecast.serve import parse_request
from seqforecast.serve.requests import FIELDS, Limits, TooMuchWork

requests = pytest.importorskip("requests")
litserve = pytest.importorskip("litserve")

FACTS = {"n_steps": 5, "horizon": 3, "n_features": 1, "levels": [80.0], "file_data": False}
WINDOW = [0.1, 0.2, 0.3, 0.4, 0.5]


def assert_forecasts(got: object, want: object) -> None:
    """Forecasts equal up to float32 rounding of their magnitude: the service batches windows
    with other requests', and other batch shapes take other kernel paths on other CPUs."""
    np.testing.assert_allclose(got, want, **scaled_tol(want, 1e-5))


# --- request checks (no model, no server) -------------------------------------------------


def test_windows_become_float32_series_time_features() -> None:
    job = parse_request({"windows": [WINDOW, WINDOW[::-1]]}, FACTS)
    assert job.x.shape == (2, 5, 1) and job.x.dtype == np.float32
    np.testing.assert_array_equal(job.x[1, :, 0], np.float32(WINDOW[::-1]))
    assert (job.ahead, job.levels, job.method, job.window) == (3, (80.0,), None, "sliding")
    three = parse_request({"windows": [[[v] for v in WINDOW]], "levels": []}, FACTS)
    np.testing.assert_array_equal(three.x, job.x[:1])
    assert three.levels == ()


def test_levels_default_to_the_checkpoints_for_direct_forecasts_only() -> None:
    assert parse_request({"windows": [WINDOW], "ahead": 2}, FACTS).levels == (80.0,)
    assert parse_request({"windows": [WINDOW], "ahead": 7}, FACTS).levels == ()  # iterative
    assert parse_request({"windows": [WINDOW], "levels": [95, 50]}, FACTS).levels == (50.0, 95.0)


def test_rows_become_a_frame_for_file_models() -> None:
    facts = {**FACTS, "file_data": True}
    rows = [{"date": "2021-01-01", "value": 1.5}, {"date": "2021-01-02", "value": None}]
    frame = parse_request({"rows": rows}, facts).rows
    assert list(frame.columns) == ["date", "value"] and frame["value"].isna().tolist() == [0, 1]


BAD = [
    ([[0.1, 0.2]], {}, r"windows have shape \[1, 2\]; this model expects \[n_series, 5\]"),
    ([[WINDOW]], {}, r"windows have shape \[1, 1, 5\]"),
    ([WINDOW, [1.0]], {}, "ragged"),
    ([[*WINDOW[:4], float("nan")]], {}, r"windows\[0\]\[4\] is NaN"),
    ([[*WINDOW[:4], float("inf")]], {}, r"windows\[0\]\[4\] is inf"),
    ([[*WINDOW[:4], 1e39]], {}, "float32's range"),
    ([[*WINDOW[:2], None, 0.4, 0.5]], {}, r"windows\[0\]\[2\] is null"),
    ([[*WINDOW[:2], "0.3", 0.4, 0.5]], {}, r'windows\[0\]\[2\] is "0.3"'),
    ([[*WINDOW[:2], True, 0.4, 0.5]], {}, r"windows\[0\]\[2\] is true"),
    ([], {}, "non-empty list"),
    ("1,2", {}, "non-empty list"),
    ([WINDOW], {"ahead": 0}, "ahead must be an integer >= 1, got 0"),
    ([WINDOW], {"ahead": -2}, "got -2"),
    ([WINDOW], {"ahead": 2.0}, "got 2.0"),
    ([WINDOW], {"ahead": True}, "got True"),
    ([WINDOW], {"ahead": "3"}, "got '3'"),
    ([WINDOW], {"ahead": 10**9}, "exceeds this service's max_ahead=1000"),
    ([WINDOW], {"ahead": 4, "levels": [80]}, "ahead=4 is iterative; use ahead<=3 or levels=\\[\\]"),
    ([WINDOW], {"levels": [120]}, "levels=\\[120\\] is not allowed"),
    ([WINDOW], {"levels": "80"}, "levels='80' is not allowed"),
    ([WINDOW], {"intervals": "bands"}, "intervals must be one of"),
    ([WINDOW], {"window": "wide"}, "window must be one of"),
    ([WINDOW], {"horizon": 3}, r"unknown request fields \['horizon'\]"),
    ([WINDOW], {"rows": []}, "exactly one of 'windows'"),
    (
        [[int("1" * 400), *WINDOW[1:]]],
        {},
        r"windows\[0\]\[0\] is an integer of 400 digits: expected",
    ),
    ([WINDOW], {"ahead": int("9" * 400)}, "ahead=an integer of 400 digits exceeds"),
    ([WINDOW], {"levels": [int("9" * 400)]}, r"levels\[0\] is an integer of 400 digits"),
    ([WINDOW], {"levels": list(range(1, 22))}, "levels has 21 values; .* at most max_levels=20"),
    ([WINDOW], {"levels": [50 + i / 1000 for i in range(20_000)]}, "levels has 20000 values"),
]


@pytest.mark.parametrize(("windows", "extra", "message"), BAD)
def test_bad_requests_are_refused_in_one_line(windows, extra, message) -> None:
    with pytest.raises(InputError, match=message) as err:
        parse_request({"windows": windows, **extra}, FACTS)
    assert "\n" not in str(err.value)


def test_integers_past_int64_are_numbers_and_past_float32_refused() -> None:
    job = parse_request({"windows": [[2**70, 2**64 + 5, 0.3, 4, 5]]}, FACTS)
    np.testing.assert_array_equal(job.x[0, :2, 0], np.float32([2.0**70, 2.0**64]))


@pytest.mark.parametrize(
    ("n", "ahead", "levels", "passes", "values"),
    [
        (2500, 3, [], 2500, 7500),  # the budget's edge: allowed
        (2501, 3, [], 2501, 7503),
        (1, 1000, [], 334, 1000),
        (8, 1000, [], 2672, 8000),  # iterative: ceil(1000 / 3) = 334 passes per window
        (2000, 3, [10, 20, 30, 40, 50, 60, 70, 80, 90, 95], 2000, 126_000),
        (2000, 3, [*range(5, 100, 5)], 2000, 234_000),
        (2100, 3, [*range(5, 100, 5)], 2100, 245_700),
        (2200, 3, [*range(5, 100, 5)], 2200, 257_400),
    ],
)
def test_work_budget_counts_passes_and_answer_numbers(n, ahead, levels, passes, values) -> None:
    """passes = windows x ceil(ahead / horizon); values = windows x ahead x (1 + 2 levels):
    each over its limit is a TooMuchWork line (a 413), exactly at it is allowed."""
    body = {"windows": [WINDOW] * n, "ahead": ahead, "levels": levels}
    limits = Limits(max_passes=2500, max_values=250_000)
    if passes <= 2500 and values <= 250_000:
        assert parse_request(body, FACTS, limits).x.shape == (n, 5, 1)
        return
    with pytest.raises(TooMuchWork) as err:
        parse_request(body, FACTS, limits)
    number = str(passes) if passes > 2500 else str(values)
    assert number in str(err.value) and "\n" not in str(err.value)
    assert "max_passes=2500" in str(err.value) or "max_values=250000" in str(err.value)


def test_rows_count_as_windows_of_n_steps_rows() -> None:
    facts = {**FACTS, "file_data": True}
    rows = [{"value": 0.5}] * 50  # 10 windows' worth at n_steps 5
    assert len(parse_request({"rows": rows, "ahead": 30}, facts, Limits(max_passes=100)).rows) == 50
    with pytest.raises(TooMuchWork, match=r"50 rows \(~10 series\) x ahead=33 need 110"):
        parse_request({"rows": rows, "ahead": 33}, facts, Limits(max_passes=100))


def test_bodies_that_are_not_requests() -> None:
    with pytest.raises(InputError, match="must be a JSON object, got list"):
        parse_request([WINDOW], FACTS)
    with pytest.raises(InputError, match="exactly one of"):
        parse_request({"ahead": 2}, FACTS)
    with pytest.raises(InputError, match="rows are for models trained on a file"):
        parse_request({"rows": [{"value": 1.0}]}, FACTS)
    file_facts = {**FACTS, "file_data": True}
    with pytest.raises(InputError, match=r"rows\[1\]\['value'\] is nan, which JSON"):
        parse_request({"rows": [{"value": 1.0}, {"value": float("nan")}]}, file_facts)
    with pytest.raises(InputError, match="non-empty list of objects"):
        parse_request({"rows": [[1.0]]}, file_facts)
    multivariate = {**FACTS, "n_features": 2}
    with pytest.raises(InputError, match="needs a univariate model"):
        parse_request({"windows": [[[1.0, 2.0]] * 5], "ahead": 4}, multivariate)
    with pytest.raises(InputError, match=r"expects \[n_series, 5, 2\]"):
        parse_request({"windows": [WINDOW]}, multivariate)


def post_asgi(app, body: bytes, path: str = "/predict", method: str = "POST") -> tuple[int, dict]:
    """One JSON request through an ASGI app: (status, JSON answer)."""
    sent = []

    async def receive():
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message):
        sent.append(message)

    headers = [(b"content-type", b"application/json")]
    scope = {
        "type": "http",
        "method": method,
        "path": path,
        "headers": headers,
        "query_string": b"",
    }
    asyncio.run(app(scope, receive, send))
    answer = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return sent[0]["status"], json.loads(answer)


@pytest.fixture(scope="module")
def http_app():
    """The service's FastAPI app with its routes, no worker: only what the HTTP process
    answers by itself (the body checks, the schema) can be asked of it."""
    from seqforecast.serve.api import ForecastAPI
    from seqforecast.serve.app import add_routes

    api = ForecastAPI("unused.ckpt", max_batch_size=4)
    server = litserve.LitServer(api, accelerator="cpu", devices=1, healthcheck_path="/ready")
    add_routes(server.app, FACTS, lambda: True)
    return server.app


SCHEMA_BAD = [case for case in BAD if case[0] in ([[*WINDOW[:2], None, 0.4, 0.5]], "1,2")]
SCHEMA_BAD += [
    ([[*WINDOW[:2], "0.3", 0.4, 0.5]], {}, None),
    ([[*WINDOW[:2], True, 0.4, 0.5]], {}, None),
    ([[int("1" * 400), *WINDOW[1:]]], {}, None),
    ([[*WINDOW[:4], float("nan")]], {}, r"windows\[0\]\[4\] is NaN: expected finite"),
    ([[*WINDOW[:4], -1e39]], {}, r"windows\[0\]\[4\] is -1e\+39: expected finite"),
    ([[[0.1, "x"]]], {}, None),
    ([[[[0.1]] * 5]], {}, r"windows have shape \[1, 1, 5, 1\]"),
    ([WINDOW], {"ahead": 0}, None),
    ([WINDOW], {"ahead": 2.0}, None),
    ([WINDOW], {"ahead": True}, None),
    ([WINDOW], {"ahead": "3"}, None),
    ([WINDOW], {"ahead": None}, None),
    ([WINDOW], {"levels": [120]}, None),
    ([WINDOW], {"levels": "80"}, None),
    ([WINDOW], {"levels": [int("9" * 400)]}, None),
    ([WINDOW], {"intervals": "bands"}, None),
    ([WINDOW], {"window": "wide"}, None),
    ([WINDOW], {"horizon": 3, "x": 1}, None),
    ([WINDOW], {"rows": []}, None),
]


@pytest.mark.parametrize(("windows", "extra", "message"), SCHEMA_BAD)
def test_fastapi_refuses_what_the_schema_refuses_in_parse_requests_words(
    http_app, windows, extra, message
) -> None:
    """The HTTP process checks each body against PredictRequest before it is queued: a 422
    with the same line that parse_request gives in-process."""
    body = {"windows": windows, **extra}
    with pytest.raises(InputError, match=message) as err:
        parse_request(body, FACTS)
    assert post_asgi(http_app, json.dumps(body).encode()) == (422, {"error": str(err.value)})


def test_the_request_schema_is_published(http_app) -> None:
    status, schema = post_asgi(http_app, b"", "/openapi.json", "GET")
    body = schema["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]
    assert status == 200 and body["schema"] == {"$ref": "#/components/schemas/PredictRequest"}
    request = schema["components"]["schemas"]["PredictRequest"]
    assert sorted(request["properties"]) == sorted(FIELDS)  # every field, no other
    assert request["additionalProperties"] is False
    assert request["properties"]["window"]["enum"] == ["sliding", "growing"]
    assert request["properties"]["ahead"] == {**request["properties"]["ahead"], "minimum": 1}
    errors = schema["paths"]["/predict"]["post"]["responses"]
    assert {"400", "413", "422", "504"} <= set(errors)  # each one {"error": "<one line>"}
    answer = errors["422"]["content"]["application/json"]["schema"]["$ref"].split("/")[-1]
    assert schema["components"]["schemas"][answer]["properties"] == {"error": {"type": "string"}}
    assert post_asgi(http_app, b"[1, 2]")[0] == 400  # not an object: FastAPI's own 400
    assert post_asgi(http_app, b"")[1] == {
        "error": "the request body is empty; expected a JSON object"
    }


# --- deadlines (no model, no server) ----------------------------------------------------------


class SlowForecaster:
    """Stands in for the checkpoint: each predict call takes ``seconds`` and returns the
    window's last value for every step."""

    def __init__(self, seconds: float) -> None:
        self.seconds, self.calls = seconds, []

    def predict(self, x, ahead, window="sliding"):
        self.calls.append(len(x))
        time.sleep(self.seconds)
        return np.repeat(x[:, -1, :1], ahead, axis=1)

    def method(self, ahead, window="sliding"):
        return "slow"


def test_a_request_past_its_deadline_gets_504_and_the_light_one_its_answer(monkeypatch) -> None:
    """Two chunks of the heavy request run, the deadline passes, its third chunk does not;
    the light request of the same batch runs first and is answered."""
    from seqforecast.serve import api as api_module

    monkeypatch.setattr(api_module, "CHUNK", 2)
    api = api_module.ForecastAPI("unused.ckpt", timeout=1.2, max_batch_size=8)
    api.forecaster, api.facts = SlowForecaster(0.5), {**FACTS, "levels": []}
    heavy = {"windows": [WINDOW] * 6, "ahead": 5}  # 3 chunks of 0.5 s
    light = {"windows": [[*WINDOW[:4], 7.0]], "ahead": 2}
    out = api.predict(api.batch([api.decode_request(body) for body in (heavy, light)]))
    assert out[1] == {"method": "slow", "ahead": 2, "forecasts": [[7.0, 7.0]], "levels": []}
    assert (out[0].status, out[0].message) == (
        504,
        "the forecast did not finish within timeout=1.2 s",
    )
    assert api.forecaster.calls == [1, 2, 2]  # light first; the heavy one's third chunk never ran
    assert api.encode_response(out[0]).status_code == 504


def test_over_budget_requests_get_413_in_the_api() -> None:
    from seqforecast.serve.api import ForecastAPI

    api = ForecastAPI("unused.ckpt", limits=Limits(max_passes=10), max_batch_size=8)
    api.forecaster, api.facts = SlowForecaster(0.0), FACTS
    refusal = api.decode_request({"windows": [WINDOW] * 11, "levels": []})
    assert refusal.status == 413 and "max_passes=10" in refusal.message


def run_asgi(app, path: str = "/predict", method: str = "POST") -> tuple[int, dict]:
    """One request through an ASGI app: (status, JSON body)."""
    sent = []

    async def receive():
        return {"type": "http.request", "body": b"{}", "more_body": False}

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "method": method, "path": path, "headers": []}
    asyncio.run(app(scope, receive, send))
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return sent[0]["status"], json.loads(body)


def test_the_http_deadline_answers_504_while_the_worker_is_still_busy() -> None:
    from seqforecast.serve.app import Deadline

    async def busy(scope, receive, send):  # a worker that takes 30 s
        await asyncio.sleep(30)

    async def quick(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b'{"ok": 1}'})

    start = time.monotonic()
    assert run_asgi(Deadline(busy, 0.3)) == (
        504,
        {"error": "no answer within timeout=0.3 s (the service is busy); try again"},
    )
    assert time.monotonic() - start < 5
    assert run_asgi(Deadline(quick, 0.3)) == (200, {"ok": 1})


def test_service_settings_are_checked_before_any_work() -> None:
    from omegaconf import OmegaConf

    from seqforecast.errors import ConfigError
    from seqforecast.serve.task import build_server, check_settings

    cfg = OmegaConf.load(Path(__file__).parents[1] / "conf" / "serve.yaml")
    cfg.ckpt_path = "unused.ckpt"
    settings = check_settings(cfg)
    assert (settings["max_passes"], settings["max_values"], settings["max_levels"]) == (
        2500,
        250_000,
        20,
    )
    cfg.max_levels = 0
    with pytest.raises(ConfigError, match="max_levels=0 is not allowed"):
        check_settings(cfg)
    with pytest.raises(ConfigError, match="batch_timeout=40 must be below timeout=30"):
        build_server({**settings, "batch_timeout": 40})


# --- trained models ---------------------------------------------------------------------------

FILE = [
    "data=csv",
    "data.time=date",
    "n_steps=20",
    "data.batch_size=64",
    "trainer.accelerator=cpu",
    "trainer.enable_model_summary=false",
    "trainer.log_every_n_steps=1",
    "trainer.max_epochs=1",
]


@pytest.fixture(scope="module")
def generated_ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 1-epoch seq2seq model (n_steps 50, horizon 10) with 80/95 % conformal intervals."""
    from seqforecast.train import train

    out = tmp_path_factory.mktemp("seq2seq")
    train(compose_cfg(out, "model=seq2seq", "trainer.max_epochs=1"))  # conftest's tiny data
    return out / "checkpoints" / "best.ckpt"


@pytest.fixture(scope="module")
def file_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A 1-epoch seq2seq model on the example CSV with its date column: (checkpoint, csv)."""
    from seqforecast.train import train

    out = tmp_path_factory.mktemp("file")
    csv = write_example(out / "sine.csv", rows=400)
    train(compose_cfg(out / "run", f"data.path={csv}", "model=seq2seq", *FILE, tiny=False))
    return out / "run" / "checkpoints" / "best.ckpt", csv


def windows(n: int, seed: int, n_steps: int = 50) -> np.ndarray:
    t = np.linspace(0, 4, n_steps)
    phase = np.random.default_rng(seed).uniform(0, 6, size=(n, 1))
    return (0.5 * np.sin(t + phase)).astype(np.float32)  # [n, n_steps]


@pytest.mark.slow
def test_a_mixed_batch_answers_each_request_as_alone(generated_ckpt: Path, monkeypatch) -> None:
    """ForecastAPI in-process: groups share a pass, refusals stay with their request, and a
    group that fails is rerun one request at a time."""
    from seqforecast.serve.api import ForecastAPI

    api = ForecastAPI(str(generated_ckpt), max_batch_size=8)
    api.setup("cpu")
    f = api.forecaster
    a, b, c = windows(2, 1), windows(1, 2), windows(3, 3)
    bodies = [
        {"windows": a.tolist(), "levels": []},
        {"windows": [[0.0] * 7]},
        {"windows": b.tolist(), "levels": []},
        {"windows": c.tolist(), "ahead": 4, "levels": []},
        {"windows": b.tolist(), "ahead": 23, "window": "growing"},
        {"windows": a.tolist()},
    ]
    batch = api.batch([api.decode_request(body) for body in bodies])
    out = [api.encode_response(y) for y in api.unbatch(api.predict(batch))]
    assert [r.status_code for r in out] == [200, 422, 200, 200, 200, 200]
    answers = [json.loads(r.body) for r in out]
    assert "windows have shape [1, 7]" in answers[1]["error"]
    assert_forecasts(answers[0]["forecasts"], f.predict(a))
    assert_forecasts(answers[2]["forecasts"], f.predict(b))
    assert_forecasts(answers[3]["forecasts"], f.predict(c, 4))
    growing = f.predict(b, 23, "growing")
    assert_forecasts(answers[4]["forecasts"], growing)
    assert answers[4]["method"].startswith("iterative, growing window")
    point, bounds = f.predict_intervals(a)
    assert answers[5]["levels"] == [80.0, 95.0]
    assert_forecasts(answers[5]["forecasts"], point)
    lo = np.array(answers[5]["intervals"]["80"]["lo"], dtype=np.float64)
    assert_forecasts(lo, bounds[:, :, 0, 0])

    real = f.predict

    def fails_on_marker(x, *args, **kw):  # failures that only one request of a group causes
        if (np.asarray(x) == 9.0).any():
            raise InputError("window holds the marker")
        if (np.asarray(x) == 8.0).any():
            raise RuntimeError("a bug")
        return real(x, *args, **kw)

    monkeypatch.setattr(f, "predict", fails_on_marker)
    marked, buggy = np.full((1, 50), 9.0), np.full((1, 50), 8.0)
    group = [{"windows": w.tolist(), "levels": []} for w in (a, marked, c, buggy)]
    out = api.predict(api.batch([api.decode_request(body) for body in group]))
    assert (out[1].status, out[1].message) == (422, "window holds the marker")
    assert (out[3].status, out[3].message) == (
        500,
        "internal error (RuntimeError); see the server log",
    )
    assert_forecasts(out[0]["forecasts"], real(a))
    assert_forecasts(out[2]["forecasts"], real(c))


@pytest.mark.slow
def test_panel_rows_answer_per_series_and_refuse_unknown_ids(tmp_path: Path) -> None:
    """A model trained on a long table (data.id): one row of forecasts per series, with its
    ids and timestamps, as ``forecast_table`` gives them; an unknown id is a 422."""
    from seqforecast.serve.api import ForecastAPI
    from seqforecast.train import train

    csv = write_example(tmp_path / "panel.csv", rows=120, series=3)
    cfg = [f"data.path={csv}", "data.id=series", "model=seq2seq", *FILE]
    train(compose_cfg(tmp_path / "run", *cfg, tiny=False))
    api = ForecastAPI(str(tmp_path / "run" / "checkpoints" / "best.ckpt"), max_batch_size=4)
    api.setup("cpu")
    assert api.facts["columns"]["id"] == ["series"]
    table = pd.read_csv(csv)
    table = table[table["series"].isin(["s002", "s000"])].groupby("series").tail(30)
    rows = table[["series", "date", "value"]].to_dict("records")
    unknown = [{**r, "series": "s999"} for r in rows[:30]]
    bodies = [{"rows": rows, "ahead": 4}, {"rows": unknown}]
    out = api.predict(api.batch([api.decode_request(body) for body in bodies]))
    want = api.forecaster.forecast_table(table, ahead=4)
    assert out[0]["ids"] == [{"series": k} for k in want["series"].unique()]
    for i, (key, part) in enumerate(want.groupby("series", sort=False)):
        assert out[0]["ids"][i] == {"series": key}
        want = part["value"]
        np.testing.assert_allclose(out[0]["forecasts"][i], want, **scaled_tol(want, 1e-5))
        assert out[0]["timestamps"][i] == list(part["date"].dt.strftime("%Y-%m-%d"))
    assert out[1].status == 422 and "s999" in out[1].message, out[1]


# --- the real server ----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``scripts/serve.py`` in its own process group, stopped with SIGTERM (then SIGKILL)."""

    def __init__(self, ckpt: Path, workdir: Path, *overrides: str) -> None:
        self.port, self.log = free_port(), workdir / "serve.log"
        self.url = f"http://127.0.0.1:{self.port}"
        args = [f"ckpt_path={ckpt}", f"port={self.port}", f"hydra.run.dir={workdir}"]
        with self.log.open("w") as log:
            self.proc = subprocess.Popen(
                script_command("serve.py", *args, "log_level=warning", *overrides),
                cwd=workdir,
                env=script_env(),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def wait(self, timeout: float = 180) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise RuntimeError(f"serve.py exited: {self.log.read_text()[-3000:]}")
            try:
                if requests.get(f"{self.url}/health", timeout=2).status_code == 200:
                    return
            except requests.ConnectionError:
                pass
            time.sleep(0.25)
        raise TimeoutError(f"serve.py not ready in {timeout} s: {self.log.read_text()[-3000:]}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=40)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()

    def post(self, body: object, **kw) -> requests.Response:
        return requests.post(f"{self.url}/predict", json=body, timeout=60, **kw)


@pytest.fixture(scope="module")
def servers(
    generated_ckpt: Path, file_run: tuple[Path, Path], tmp_path_factory
) -> Iterator[tuple[Server, Server]]:
    """Both servers start together (each needs some seconds to load torch and the model)."""
    started = [
        Server(generated_ckpt, tmp_path_factory.mktemp("serve_generated"), "max_batch_size=8"),
        Server(file_run[0], tmp_path_factory.mktemp("serve_file")),
    ]
    try:
        for server in started:
            server.wait()
        yield started[0], started[1]
    finally:
        for server in started:
            server.stop()


@pytest.mark.slow
@pytest.mark.smoke  # a server (or the script) in a process of its own
def test_health_gives_the_model_facts(servers) -> None:
    generated, file = servers
    facts = requests.get(f"{generated.url}/health", timeout=10).json()
    assert facts["status"] == "ok" and facts["net"] == "rnn" and facts["target"] == "seq2seq"
    assert (facts["n_steps"], facts["horizon"], facts["levels"]) == (50, 10, [80.0, 95.0])
    facts = requests.get(f"{file.url}/health", timeout=10).json()
    assert facts["file_data"] and facts["columns"]["time"] == "date"
    schema = requests.get(f"{generated.url}/openapi.json", timeout=10).json()
    assert set(schema["components"]["schemas"]["PredictRequest"]["properties"]) == set(FIELDS)


@pytest.mark.slow
def test_windows_direct_iterative_and_intervals_match_load_forecaster(
    servers, generated_ckpt: Path
) -> None:
    server, f = servers[0], load_forecaster(generated_ckpt, "cpu")
    x = windows(5, 7)
    direct = server.post({"windows": x.tolist(), "levels": []}).json()
    assert direct["method"] == f.method(10) and "intervals" not in direct
    assert_forecasts(direct["forecasts"], f.predict(x))
    for window in ("sliding", "growing"):
        got = server.post({"windows": x[..., None].tolist(), "ahead": 25, "window": window})
        assert got.status_code == 200 and got.json()["levels"] == []  # iterative: none
        want = f.predict(x, 25, window)
        assert_forecasts(got.json()["forecasts"], want)
    answer = server.post({"windows": x.tolist(), "ahead": 6}).json()
    point, bounds = f.predict_intervals(x, 6)  # the checkpoint's levels: [80, 95]
    assert_forecasts(answer["forecasts"], point)
    for i, level in enumerate(("80", "95")):
        for k, side in enumerate(("lo", "hi")):
            got = np.array(answer["intervals"][level][side], dtype=np.float64)  # null: nan
            want = np.where(np.isfinite(bounds[..., i, k]), bounds[..., i, k], np.nan)
            assert_forecasts(got, want)


@pytest.mark.slow
@pytest.mark.smoke  # a server (or the script) in a process of its own
def test_rows_of_a_file_model_match_forecast_table(servers, file_run) -> None:
    server, (ckpt, csv) = servers[1], file_run
    f = load_forecaster(ckpt, "cpu")
    frame = pd.read_csv(csv).tail(60)
    rows = frame[["date", "value"]].to_dict("records")
    answer = server.post({"rows": rows, "ahead": 7, "levels": [80]}).json()
    want = f.forecast_table(frame, ahead=7, levels=[80])
    assert answer["timestamps"] == [list(want["date"].dt.strftime("%Y-%m-%d"))]
    assert answer["timestamps"][0][0] == "2021-02-04"  # the file ends 2021-02-03
    tol = scaled_tol(want["value"], 1e-5)  # float32 rounding of the forecasts' magnitude
    np.testing.assert_allclose(answer["forecasts"], [want["value"]], **tol)
    np.testing.assert_allclose(answer["intervals"]["80"]["hi"], [want["hi-80"]], **tol)
    missing = server.post({"rows": [{"date": r["date"]} for r in rows]})
    assert missing.status_code == 422 and "missing ['value']" in missing.json()["error"]
    short = server.post({"rows": rows[:5]}).json()["error"]
    assert short == "input request has 5 usable rows; the model needs the last n_steps = 20"


ROW = b"[" + b"0.5, " * 49 + b"0.5]"  # one window of the generated model (n_steps 50)
HTTP_BAD = [
    (b'{"windows": [[0.1, 0.2]]}', 422, "windows have shape [1, 2]"),
    (b'{"windows": [[NaN' + b", 0.5" * 49 + b"]]}", 422, "windows[0][0] is NaN"),
    (b'{"windows": [[null' + b", 0.5" * 49 + b"]]}", 422, "windows[0][0] is null"),
    (b'{"windows": [[Infinity' + b", 0.5" * 49 + b"]]}", 422, "windows[0][0] is inf"),
    (b'{"windows": [[' + b"0.5, " * 49 + b'0.5]], "ahead": 0}', 422, "ahead must be an integer"),
    (b'{"windows": [[' + b"0.5, " * 49 + b'0.5]], "ahead": 1.5}', 422, "got 1.5"),
    (b'{"windows": [[0.1, ', 400, "malformed JSON"),
    (b"[1, 2]", 400, "must be a JSON object"),
    (b"", 400, "the request body is empty"),
    (b'{"rows": [{"value": 1}]}', 422, "rows are for models trained on a file"),
    (b'{"windows": [[' + b"1" * 400 + b", 0.5" * 49 + b"]]}", 422, "an integer of 400 digits"),
    (b'{"windows": [' + ROW + b'], "levels": [' + b"50, " * 20 + b"51]}", 422, "has 21 values"),
    (b'{"windows": [' + b", ".join([ROW] * 26) + b'], "ahead": 1000}', 413, "2600 forward passes"),
]


@pytest.mark.slow
@pytest.mark.smoke  # a server (or the script) in a process of its own
def test_bad_requests_get_one_clear_4xx_and_the_server_keeps_serving(servers) -> None:
    server = servers[0]
    headers = {"Content-Type": "application/json"}
    for body, status, message in HTTP_BAD:
        r = requests.post(f"{server.url}/predict", data=body, headers=headers, timeout=60)
        assert (r.status_code, list(r.json())) == (status, ["error"]), r.text
        assert message in r.json()["error"] and "\n" not in r.json()["error"]
    huge = requests.post(f"{server.url}/predict", data=b"[" * 10 * 2**20, headers=headers)
    assert huge.status_code == 413 and "exceeds this service's limit of 1 MiB" in huge.text
    chunks = (b" " * 2**18 for _ in range(40))  # no Content-Length: counted as it arrives
    chunked = requests.post(f"{server.url}/predict", data=chunks, headers=headers)
    assert chunked.status_code == 413
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as raw:
        raw.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: 12abc\r\n\r\n{}")
        answer = b""
        while chunk := raw.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400") and b"application/json" in head, answer
    assert "Content-Length that is not a number" in json.loads(body)["error"]
    ok = server.post({"windows": windows(1, 0).tolist()})
    assert ok.status_code == 200 and len(ok.json()["forecasts"][0]) == 10
    assert requests.get(f"{server.url}/health", timeout=10).json()["status"] == "ok"
    assert requests.get(f"{server.url}/nope", timeout=10).json() == {"error": "Not Found"}


@pytest.mark.slow
@pytest.mark.smoke  # a server (or the script) in a process of its own
def test_concurrent_clients_get_their_own_answers(servers, generated_ckpt: Path) -> None:
    server, f = servers[0], load_forecaster(generated_ckpt, "cpu")
    cases = [(windows(1 + i % 3, 100 + i), 3 + i % 4) for i in range(32)]  # mixed keys
    bad = {"windows": [[0.0] * 3]}

    def call(i: int) -> tuple[int, dict]:
        x, ahead = cases[i]
        r = server.post(bad if i % 8 == 5 else {"windows": x.tolist(), "ahead": ahead})
        return r.status_code, r.json()

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(call, range(len(cases))))
    for i, (status, answer) in enumerate(results):
        if i % 8 == 5:
            assert status == 422 and "windows have shape [1, 3]" in answer["error"]
            continue
        x, ahead = cases[i]
        assert status == 200, answer
        assert_forecasts(answer["forecasts"], f.predict(x, ahead))


@pytest.mark.slow
@pytest.mark.smoke  # a server (or the script) in a process of its own
def test_sigterm_stops_the_server_with_one_line(servers) -> None:
    """Last of the tests that use the servers: SIGTERM to the first one (after its requests,
    iterative ones included) prints ``stopped`` and nothing else: no LitServe traceback, no
    leaked-semaphore warning."""
    server = servers[0]
    assert server.post({"windows": windows(3, 5).tolist(), "ahead": 1000}).status_code == 200
    before = server.log.stat().st_size
    server.proc.send_signal(signal.SIGTERM)
    assert server.proc.wait(timeout=60) == 0
    with server.log.open() as log:
        log.seek(before)
        assert log.read() == "stopped\n"


@pytest.mark.slow
@pytest.mark.smoke  # a server (or the script) in a process of its own
def test_a_bad_checkpoint_stops_the_script_in_one_line(tmp_path: Path) -> None:
    proc = subprocess.run(
        script_command("serve.py", f"ckpt_path={tmp_path / 'nope.ckpt'}", "port=8123"),
        cwd=tmp_path,
        env=script_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].startswith("error: checkpoint not found")

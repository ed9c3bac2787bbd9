"""``serve(cfg)``: the task behind ``scripts/serve.py``, an HTTP forecasting service.

The checkpoint is loaded once in this process to check it and to answer ``GET /health``
(a bad path or checkpoint stops here with one line, before any worker starts); each
LitServe worker then loads it onto its device and answers ``POST /predict`` in batches.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
from typing import Any

from omegaconf import DictConfig, OmegaConf

from seqforecast import rules
from seqforecast.errors import ConfigError

HOSTS = ("127.0.0.1", "0.0.0.0", "::")  # what LitServe binds to
BUDGET = ("max_ahead", "max_passes", "max_values", "max_levels")  # Limits' fields
SETTINGS = {
    "host": rules.choice(*HOSTS),
    "port": rules.int_between(1024, 65535),
    "device": rules.choice("auto", "cpu", "cuda"),
    "layers": rules.choice("fast", "plain"),
    "workers": rules.int_at_least(1),
    "api_servers": rules.int_at_least(1),
    "max_batch_size": rules.int_at_least(1),
    "batch_timeout": rules.Rule(rules.NON_NEGATIVE.check, "a number of seconds >= 0"),
    "timeout": rules.Rule(rules.POSITIVE.check, "a number of seconds > 0"),
    "max_body_mb": rules.Rule(rules.POSITIVE.check, "a number of MiB > 0"),
    **dict.fromkeys(BUDGET, rules.int_at_least(1)),
    "log_level": rules.choice("debug", "info", "warning", "error"),
}


def check_settings(cfg: DictConfig) -> dict[str, Any]:
    """The service's settings, each checked; ``ckpt_path`` is required."""
    if OmegaConf.is_missing(cfg, "ckpt_path") or not cfg.ckpt_path:
        raise ConfigError("ckpt_path is required: ckpt_path=outputs/<run>/checkpoints/best.ckpt")
    settings = {"ckpt_path": str(cfg.ckpt_path)}
    for key, rule in SETTINGS.items():
        settings[key] = rules.check_value(key, cfg.get(key), rule)
    return settings


def build_server(settings: dict[str, Any]) -> Any:
    """The LitServer for ``settings`` (checked): the API, its limits and routes."""
    import litserve as ls

    from seqforecast.predict.checkpoint import resolve_device
    from seqforecast.serve.api import ForecastAPI, health_facts
    from seqforecast.serve.app import BodyLimit, Deadline, add_routes
    from seqforecast.serve.requests import Limits

    s = settings
    if s["batch_timeout"] >= s["timeout"]:
        raise ConfigError(
            f"batch_timeout={s['batch_timeout']} must be below timeout={s['timeout']} "
            "(a request would time out while its batch fills)"
        )
    accelerator = resolve_device(s["device"]).type  # cpu | cuda; one clear line without a GPU
    facts = health_facts(s["ckpt_path"], s["layers"])
    budget = {k: s[k] for k in BUDGET}
    limits = Limits(**budget)
    api = ForecastAPI(
        s["ckpt_path"],
        s["layers"],
        limits,
        float(s["timeout"]),
        max_batch_size=s["max_batch_size"],
        batch_timeout=float(s["batch_timeout"]),
    )
    server = ls.LitServer(
        api,
        accelerator=accelerator,
        devices=1,
        workers_per_device=s["workers"],
        timeout=float(s["timeout"]),
        healthcheck_path="/ready",  # LitServe's plain-text probe; /health is ours (JSON)
        middlewares=[
            (BodyLimit, {"max_bytes": int(s["max_body_mb"] * 2**20)}),
            (Deadline, {"seconds": float(s["timeout"])}),
        ],
    )

    def ready() -> bool:
        status = dict(getattr(server, "workers_setup_status", None) or {})
        return bool(status) and all(str(v) == "ready" for v in status.values())

    add_routes(server.app, {**facts, "max_batch_size": s["max_batch_size"], **budget}, ready)
    return server


class _Stopping(logging.Filter):
    """Drops LitServe's ``Monitoring worker crashed`` once a stop has begun: its monitor
    thread polls the shared state that the shutdown has just closed (known-benign then)."""

    stopping = False

    def filter(self, record: logging.LogRecord) -> bool:
        return not (self.stopping and record.getMessage() == "Monitoring worker crashed")


def _stop_on_sigterm() -> _Stopping:
    """SIGTERM stops the service as Ctrl+C does (LitServe then shuts its workers down); the
    HTTP processes forked later inherit the handler and, once uvicorn has closed them, exit."""
    main, quiet = os.getpid(), _Stopping()
    logging.getLogger("litserve.server").addFilter(quiet)

    def handler(signum: int, frame: Any) -> None:
        if os.getpid() == main:
            quiet.stopping = True
            raise KeyboardInterrupt
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, handler)
    return quiet


def serve(cfg: DictConfig) -> None:
    """Start the service and block until it is stopped (Ctrl+C or SIGTERM)."""
    from seqforecast.serve.app import JsonErrorProtocol

    settings = check_settings(cfg)
    server = build_server(settings)
    quiet = _stop_on_sigterm()
    with contextlib.suppress(KeyboardInterrupt):  # a second signal while LitServe stops
        server.run(
            host=settings["host"],
            port=settings["port"],
            num_api_servers=settings["api_servers"],
            log_level=settings["log_level"],
            generate_client_file=False,
            http=JsonErrorProtocol,  # uvicorn's own 400s as {"error": ...} too
        )
    quiet.stopping = True
    print("stopped", flush=True)

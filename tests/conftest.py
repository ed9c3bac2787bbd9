"""Compose the real Hydra config with tiny-data overrides."""

from __future__ import annotations

import logging
import os
import runpy
import signal
import subprocess
import sys
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from lightning.pytorch.callbacks import Callback
from omegaconf import DictConfig

from seqforecast import auto

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"
MODEL_OPTIONS = sorted(p.stem for p in (CONF / "model").glob("*.yaml"))
TINY = [
    "data.n_series=96",
    "data.split=[64,16,16]",
    "data.batch_size=16",
    "trainer.accelerator=cpu",
    "trainer.enable_model_summary=false",
    "trainer.log_every_n_steps=1",  # tiny data: a handful of batches an epoch
]


def script_command(script: str, *args: str) -> list[str]:
    return [sys.executable, str(ROOT / "scripts" / script), *args]


def script_env() -> dict[str, str]:
    """The environment for a script run: this checkout's package, from any working directory."""
    return {**os.environ, "PYTHONPATH": str(ROOT / "src")}


def run_script(
    script: str, *args: str, cwd: Path, timeout: int = 300
) -> subprocess.CompletedProcess:
    """Run ``scripts/<script>`` with ``args`` in ``cwd`` and capture its output."""
    return subprocess.run(
        script_command(script, *args),
        cwd=cwd,
        env=script_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@contextmanager
def _fresh_process_state() -> Iterator[None]:
    """Undo what a Hydra app changes in this process: Hydra's singletons, logging, threads."""
    GlobalHydra.instance().clear()
    loggers = [logging.getLogger(), *logging.Logger.manager.loggerDict.values()]
    saved = [
        (lg, lg.level, list(lg.handlers), lg.propagate, lg.disabled)
        for lg in loggers
        if isinstance(lg, logging.Logger)
    ]
    threads = torch.get_num_threads()
    try:
        yield
    finally:
        GlobalHydra.instance().clear()
        HydraConfig.instance().cfg = None  # HydraConfig.initialized() is False again
        for lg, level, handlers, propagate, disabled in saved:
            for handler in set(lg.handlers) - set(handlers):  # Hydra's console and train.log
                handler.close()
            lg.setLevel(level)
            lg.handlers[:] = handlers
            lg.propagate, lg.disabled = propagate, disabled
        torch.set_num_threads(threads)


def run_as_main(
    path: Path,
    args: Sequence[str],
    cwd: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> subprocess.CompletedProcess:
    """Run the Python file ``path`` with ``args`` in this process, as ``python path args``
    would: as ``__main__``, with ``sys.argv`` set and ``cwd`` the working directory. Its exit
    status, stdout and stderr (with those of the processes it starts) come back as a
    ``CompletedProcess``; what the test printed before is discarded, and the environment
    variables it sets are undone with the rest of the process state."""
    capfd.readouterr()
    code: int | str | None = 0
    environ = dict(os.environ)
    with monkeypatch.context() as m, _fresh_process_state():
        m.chdir(cwd)
        m.setattr(sys, "argv", [str(path), *args])
        try:
            runpy.run_path(str(path), run_name="__main__")
        except SystemExit as stop:
            code = stop.code
        except Exception:  # as a process would end (Hydra re-raises under a tracer)
            traceback.print_exc()
            code = 1
        finally:
            os.environ.clear()
            os.environ.update(environ)
    out, err = capfd.readouterr()
    if isinstance(code, str):  # sys.exit("message"): printed, status 1
        err, code = err + code + "\n", 1
    return subprocess.CompletedProcess([str(path), *args], code or 0, out, err)


@pytest.fixture
def run_main(
    capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> Callable[..., subprocess.CompletedProcess]:
    """Run ``scripts/<script> args`` in this process (:func:`run_as_main`).

    For tests of what a script does, not of the process boundary (start-up, imports,
    signals from outside, resource limits), which keep :func:`run_script`.
    """

    def _run(script: str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
        return run_as_main(ROOT / "scripts" / script, args, cwd, monkeypatch, capfd)

    return _run


class SignalAt(Callback):
    """Send this process ``signum`` as training step ``step`` starts (a preemption, in-process)."""

    def __init__(self, step: int, signum: int = signal.SIGTERM) -> None:
        self.step, self.signum = step, signum

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx: int) -> None:
        if trainer.global_step == self.step:
            os.kill(os.getpid(), self.signum)


class SignalAtEpochEnd(Callback):
    """Send this process ``signum`` in the training epoch ``epoch``'s end hooks."""

    def __init__(self, epoch: int, signum: int = signal.SIGTERM) -> None:
        self.epoch, self.signum = epoch, signum

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        if trainer.current_epoch == self.epoch:
            os.kill(os.getpid(), self.signum)


def compose_cfg(
    output_dir: Path, *overrides: str, tiny: bool = True, resolve: bool = True
) -> DictConfig:
    """The real ``conf/train.yaml`` composed with ``overrides`` (and tiny data by default).

    ``resolve``: generated data's ``auto`` settings are resolved as ``train`` does first
    (:func:`seqforecast.auto.resolve`), so its model and data can be instantiated by hand;
    file data keeps them (resolving reads the file, which a test may write later).
    """
    extra = TINY if tiny else []
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("train", overrides=[f"output_dir={output_dir}", *extra, *overrides])
    if resolve and "FileDataModule" not in str(cfg.data.get("_target_")):
        auto.resolve(cfg)
    return cfg


@pytest.fixture
def make_cfg(tmp_path: Path) -> Callable[..., DictConfig]:
    def _make(*overrides: str, tiny: bool = True) -> DictConfig:
        return compose_cfg(tmp_path, *overrides, tiny=tiny)

    return _make


def scaled_tol(expected: object, rtol: float, atol: float = 0.0) -> dict[str, float]:
    """``rtol`` and an absolute part of ``rtol`` x the largest finite ``|expected|`` (at least
    ``atol``): keyword arguments for ``np.testing.assert_allclose`` and
    ``torch.testing.assert_close``.

    Float kernels round differently on other CPUs (vector width, fused multiply-adds, the
    order of a sum; ``ATEN_CPU_CAPABILITY=default NUMBA_CPU_NAME=generic`` give such a CPU's
    paths here), and their rounding is relative to the magnitude of the whole computation,
    not of each entry: a value near zero (a sine crossing zero, a gradient that nearly
    cancels) carries the absolute error of the largest one, which ``rtol`` alone refuses.
    ``atol`` is for results whose true values are all zero (a gradient through a
    one-unit layer norm): their entries are rounding noise of the computation's scale.
    """
    if isinstance(expected, torch.Tensor):
        expected = expected.detach().double().cpu().numpy()
    values = np.abs(np.asarray(expected, dtype=np.float64))
    scale = float(values[np.isfinite(values)].max(initial=0.0))
    return {"rtol": rtol, "atol": max(atol, rtol * scale)}


def assert_nets_agree(net: torch.nn.Module, ref: torch.nn.Module, x: torch.Tensor) -> None:
    """Two nets with the same weights: equal outputs and equal gradients of every parameter."""
    y, y_ref = net(x), ref(x)
    torch.testing.assert_close(y, y_ref)
    y.square().mean().backward()
    y_ref.square().mean().backward()
    for (name, p), q in zip(net.named_parameters(), ref.parameters(), strict=True):
        torch.testing.assert_close(p.grad, q.grad, msg=lambda m, name=name: f"{name}: {m}")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--smoke",
        action="store_true",
        help="also run the smoke tier (marker smoke): every documented command and every "
        "benchmark script end to end; CI runs it as a step of its own (docs/tests.md)",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not config.getoption("--smoke"):  # deselected, as -m would: the suite stays minutes
        smoke = [item for item in items if "smoke" in item.keywords]
        if smoke:
            config.hook.pytest_deselected(items=smoke)
            items[:] = [item for item in items if "smoke" not in item.keywords]
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)

"""Compose the real Hydra config with tiny-data overrides."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

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


def compose_cfg(output_dir: Path, *overrides: str, tiny: bool = True) -> DictConfig:
    """The real ``conf/train.yaml`` composed with ``overrides`` (and tiny data by default)."""
    extra = TINY if tiny else []
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose("train", overrides=[f"output_dir={output_dir}", *extra, *overrides])


@pytest.fixture
def make_cfg(tmp_path: Path) -> Callable[..., DictConfig]:
    def _make(*overrides: str, tiny: bool = True) -> DictConfig:
        return compose_cfg(tmp_path, *overrides, tiny=tiny)

    return _make


def assert_nets_agree(net: torch.nn.Module, ref: torch.nn.Module, x: torch.Tensor) -> None:
    """Two nets with the same weights: equal outputs and equal gradients of every parameter."""
    y, y_ref = net(x), ref(x)
    torch.testing.assert_close(y, y_ref)
    y.square().mean().backward()
    y_ref.square().mean().backward()
    for (name, p), q in zip(net.named_parameters(), ref.parameters(), strict=True):
        torch.testing.assert_close(p.grad, q.grad, msg=lambda m, name=name: f"{name}: {m}")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)

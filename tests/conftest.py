"""Compose the real Hydra config with tiny-data overrides."""

from __future__ import annotations

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
]


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


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)

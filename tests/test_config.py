"""Config validation: every option of every group composes and validates; bad values are named."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import CONF, compose_cfg
from omegaconf import OmegaConf, open_dict

from seqforecast.config import RULES, validate_config
from seqforecast.errors import ConfigError

GROUPS = {
    group.name: sorted(p.stem for p in group.glob("*.yaml"))
    for group in CONF.iterdir()
    if group.is_dir() and group.name != "hydra"
}
OPTIONS = [(group, option) for group, options in GROUPS.items() for option in options]
# A value of the wrong type for every rule, and one of the right type but not allowed.
WRONG = {
    "seed": ["abc", 1.5],
    "n_steps": ["50", 1],
    "horizon": [0, 2.5],
    "target": ["both", 3],
    "monitor": ["val/loss", None],
    "deterministic": ["yes", 1],
    "resume": [3, ["a"]],
    "threads": [0, "all"],
    "data.n_series": [0, "many"],
    "data.split": [[7000, 2000], "7000", ["2020-01-01"], ["2020-01-01", ""]],
    "data.batch_size": [0, 32.0],
    "data.eval_batch_size": [-1, "big"],
    "data.seed": ["s", None],
    "data.shuffle_seed": [1.5, "x"],
    "data.path": ["", 3],
    "data.target": ["", None],
    "data.inputs": ["aux", [""], [1]],
    "data.time": ["", 1],
    "data.scaling": ["robust", None],
    "data.fill": ["bfill", 0],
    "data.target_kind": ["both", 1],
    "model.net": ["transformer", 1],
    "model.hidden": [[], [20, 0], "20"],
    "model.head": ["dense", None],
    "model.lr": [0, -1e-3, "fast"],
    "model.n_features": [0, 1.5],
    "model.init": ["xavier", None],
    "layers": ["numba", 1],
    "trainer.gradient_clip_algorithm": ["l2"],
    "trainer.accumulate_grad_batches": [0, 1.5],
    "model.adam_eps": [0, "tiny"],
    "model.filters": [0, 2.5],
    "model.kernel_size": [0, "4"],
    "model.stride": [-1, None],
    "model.dilations": [[], [1, 0]],
    "trainer.max_epochs": [-2, "20"],
    "trainer.accelerator": ["tpu-v9", 1],
    "trainer.devices": [0, "two"],
    "trainer.gradient_clip_val": [-1.0, "clip"],
    "trainer.deterministic": ["true", 0],
    "trainer.fast_dev_run": [-1, "yes"],
    "trainer.log_every_n_steps": [0, 1.5],
}


def test_every_rule_has_bad_values() -> None:
    assert set(WRONG) == set(RULES)


@pytest.mark.parametrize(("group", "option"), OPTIONS)
def test_every_option_of_every_group_validates(tmp_path: Path, group: str, option: str) -> None:
    cfg = compose_cfg(tmp_path, f"{group}={option}", tiny=False)
    validate_config(cfg)


@pytest.mark.parametrize(("key", "value"), [(k, v) for k, vs in WRONG.items() for v in vs])
def test_bad_value_names_key_value_and_allowed(tmp_path: Path, key: str, value: object) -> None:
    cfg = compose_cfg(tmp_path, "model=seq2seq")
    with open_dict(cfg):
        OmegaConf.update(cfg, key, value, force_add=True)
    with pytest.raises(ConfigError, match=rf"^{key}=.* is not allowed: expected "):
        validate_config(cfg)


@pytest.mark.parametrize("node", ["model", "data"])
def test_misspelt_key_lists_allowed(tmp_path: Path, node: str) -> None:
    cfg = compose_cfg(tmp_path, f"+{node}.lerning_rate=0.1")
    with pytest.raises(
        ConfigError, match=rf"{node}.lerning_rate is not a setting of .*allowed: \["
    ):
        validate_config(cfg)

"""Config validation: every option of every group composes and validates; bad values are named."""

from __future__ import annotations

import copy
import importlib.util
from pathlib import Path

import pytest
from conftest import CONF, compose_cfg
from omegaconf import DictConfig, OmegaConf, open_dict

from seqforecast import memory
from seqforecast.config import validate_config
from seqforecast.data.files import FileDataModule
from seqforecast.data.sine import SineDataModule
from seqforecast.data.windows import MAX_STEPS
from seqforecast.errors import ConfigError
from seqforecast.module import ForecastModule
from seqforecast.rules import check, rules
from seqforecast.train import set_threads

GROUPS = {
    group.name: sorted(p.stem for p in group.glob("*.yaml"))
    for group in CONF.iterdir()
    if group.is_dir() and group.name != "hydra"
}
TENSORBOARD = any(importlib.util.find_spec(m) for m in ("tensorboard", "tensorboardX"))
OPTIONS = [(group, option) for group, options in GROUPS.items() for option in options]
# A value of the wrong type for every rule, and one of the right type but not allowed.
WRONG = {
    "seed": ["abc", 1.5, -1, 2**32, 12345678901234567890],
    "seeds": [0, -1, 1.5, "three", [], True],
    "n_steps": ["50", 1, MAX_STEPS + 1, "Auto"],
    "season": [0, "abc", 1.5],
    "callbacks.early_stopping.patience": [-1, "soon"],
    "horizon": [0, 2.5],
    "target": ["both", 3],
    "monitor": ["val/loss", None],
    "deterministic": ["yes", 1],
    "resume": [3, ["a"]],
    "threads": [0, "all"],
    "max_memory": [0, -1, "lots", "4XB", True, [4]],
    "levels": [[0, 80], [100], "80", [80, 80], [True]],
    "intervals": ["bootstrap", None],
    "data.n_series": [0, "many"],
    "data.split": [[7000, 2000], "7000", ["2020-01-01"], ["2020-01-01", ""]],
    "data.batch_size": [0, 32.0],
    "data.eval_batch_size": [-1, "big"],
    "model.loss": ["mae", None, 1],
    "model.quantiles": [[0.9, 0.5, 0.1], [0.1, 0.9], [0, 0.5, 1], "0.5", [0.5, 0.5], [True, 0.5]],
    "n_windows": [0, "all"],
    "step_size": [0, 1.5],
    "refit": ["always", 0],
    "season_length": [0, "7"],
    "baselines": ["naive", ["arima"], ["naive", "naive"]],
    "data.seed": ["s", None],
    "data.shuffle_seed": [1.5, "x"],
    "data.path": ["", 3],
    "data.target": ["", None],
    "data.inputs": ["aux", [""], [1]],
    "data.time": ["", 1],
    "data.scaling": ["robust", None],
    "data.fill": ["bfill", 0],
    "data.target_kind": ["both", 1],
    "data.id": ["", [], [1], ["store", ""]],
    "data.scaling_scope": ["local", 1],
    "data.transform": ["sqrt", None],
    "data.boxcox_lambda": ["0.5", float("nan"), True],
    "data.future_inputs": ["promo", [1]],
    "data.calendar": [["weekday"], ["month", "month"], "month"],
    "model.net": ["transformer", 1],
    "model.hidden": [[], [20, 0], "20"],
    "model.head": ["dense", None],
    "model.lr": [0, -1e-3, "fast"],
    "model.n_features": [0, 1.5],
    "model.init": ["xavier", None],
    "model.window_norm": ["scale", None],
    "model.revin_affine": ["yes", 1],
    "model.season": [0, 1.5, "12"],
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
    "trainer.precision": [7, "fp8", None],
    "trainer.enable_progress_bar": ["no", 0],
    "max_ahead": [0, "1000"],
}


@pytest.fixture(scope="module")
def composed(tmp_path_factory: pytest.TempPathFactory) -> DictConfig:
    """``model=seq2seq`` on tiny data, composed once; each test changes a deep copy."""
    return compose_cfg(tmp_path_factory.mktemp("run"), "model=seq2seq")


def with_value(cfg: DictConfig, key: str, value: object) -> DictConfig:
    """A copy of ``cfg`` with ``key`` set to ``value`` (added if absent)."""
    cfg = copy.deepcopy(cfg)
    with open_dict(cfg):
        OmegaConf.update(cfg, key, value, force_add=True)
    return cfg


def test_every_rule_has_bad_values() -> None:
    assert set(WRONG) == set(rules())


@pytest.mark.parametrize(("group", "option"), OPTIONS)
def test_every_option_of_every_group_validates(tmp_path: Path, group: str, option: str) -> None:
    cfg = compose_cfg(tmp_path, f"{group}={option}", tiny=False)
    if (group, option) == ("logger", "tensorboard") and not TENSORBOARD:
        with pytest.raises(ConfigError, match=r'pip install -e "\.\[tensorboard\]"'):
            validate_config(cfg)  # the extra is named (next test: as one whole line)
        return
    validate_config(cfg)


@pytest.mark.parametrize(("key", "value"), [(k, v) for k, vs in WRONG.items() for v in vs])
def test_bad_value_names_key_value_and_allowed(composed, key: str, value: object) -> None:
    with pytest.raises(ConfigError, match=rf"^{key}=.* is not allowed: expected "):
        validate_config(with_value(composed, key, value))


@pytest.mark.parametrize("node", ["model", "data", "trainer"])
def test_misspelt_key_lists_allowed(tmp_path: Path, node: str) -> None:
    cfg = compose_cfg(tmp_path, f"+{node}.lerning_rate=0.1")
    with pytest.raises(
        ConfigError, match=rf"{node}.lerning_rate is not a setting of .*allowed: \["
    ):
        validate_config(cfg)


# How each value is given by hand (Python API, checkpoint hparams): one constructor per key,
# with settings under which that key is used.
CONV = {"net": "conv_gru", "target": "seq2seq", "hidden": [20]}
BY_HAND = {
    "max_memory": memory.parse_size,
    "n_steps": lambda v: ForecastModule(n_steps=v),
    "season": lambda v: FileDataModule(season=v),
    "horizon": lambda v: SineDataModule(horizon=v),
    "target": lambda v: ForecastModule(target=v),
    "threads": set_threads,
    "data.n_series": lambda v: SineDataModule(n_series=v),
    "data.split": lambda v: SineDataModule(split=v),
    "data.batch_size": lambda v: SineDataModule(batch_size=v),
    "data.eval_batch_size": lambda v: FileDataModule(eval_batch_size=v),
    "data.seed": lambda v: SineDataModule(seed=v),
    "data.shuffle_seed": lambda v: FileDataModule(shuffle_seed=v),
    "data.path": lambda v: FileDataModule(path=v),
    "data.target": lambda v: FileDataModule(target=v),
    "data.inputs": lambda v: FileDataModule(inputs=v),
    "data.time": lambda v: FileDataModule(time=v),
    "data.scaling": lambda v: FileDataModule(scaling=v),
    "data.fill": lambda v: FileDataModule(fill=v),
    "data.target_kind": lambda v: FileDataModule(target_kind=v),
    "data.id": lambda v: FileDataModule(id=v),
    "data.scaling_scope": lambda v: FileDataModule(scaling_scope=v),
    "data.transform": lambda v: FileDataModule(transform=v),
    "data.boxcox_lambda": lambda v: FileDataModule(transform="boxcox", boxcox_lambda=v),
    "data.future_inputs": lambda v: FileDataModule(future_inputs=v),
    "data.calendar": lambda v: FileDataModule(calendar=v, time="date"),
    "model.net": lambda v: ForecastModule(net=v),
    "model.hidden": lambda v: ForecastModule(net="gru", hidden=v),
    "model.head": lambda v: ForecastModule(hidden=[20], head=v),
    "model.lr": lambda v: ForecastModule(lr=v),
    "model.n_features": lambda v: ForecastModule(hidden=[20], n_features=v),
    "model.init": lambda v: ForecastModule(init=v),
    "model.adam_eps": lambda v: ForecastModule(adam_eps=v),
    "model.filters": lambda v: ForecastModule(**CONV, filters=v),
    "model.kernel_size": lambda v: ForecastModule(**CONV, kernel_size=v),
    "model.stride": lambda v: ForecastModule(**CONV, stride=v),
    "model.dilations": lambda v: ForecastModule(net="wavenet", target="seq2seq", dilations=v),
    "model.loss": lambda v: ForecastModule(loss=v),
    "model.quantiles": lambda v: ForecastModule(loss="quantile", quantiles=v),
    "model.window_norm": lambda v: ForecastModule(window_norm=v),
    "model.revin_affine": lambda v: ForecastModule(window_norm="revin", revin_affine=v),
    "model.season": lambda v: ForecastModule(window_norm="seasonal", season=v),
}
# Keys only a composed config holds (the run's own settings and Lightning's Trainer); ``layers``
# is applied by seqforecast.fast.use_layers.
CONFIG_ONLY = {"seed", "seeds", "monitor", "deterministic", "resume", "layers"}
# The backtest's own settings (conf/backtest.yaml), applied by seqforecast.backtest.
CONFIG_ONLY |= {"n_windows", "step_size", "refit", "season_length", "baselines"}
# Prediction intervals (levels, intervals), applied by train and predict (seqforecast.intervals).
CONFIG_ONLY |= {"levels", "intervals"}
# predict's cap on ahead (conf/predict.yaml), applied by seqforecast.predict and the service.
CONFIG_ONLY |= {"max_ahead"}
# Lightning's EarlyStopping takes the patience train resolves (seqforecast.auto).
CONFIG_ONLY |= {"callbacks.early_stopping.patience"}


def test_every_rule_is_applied_by_hand_or_only_in_configs() -> None:
    keys = set(rules()) - {k for k in rules() if k.startswith("trainer.")}
    assert set(BY_HAND) == keys - CONFIG_ONLY


@pytest.mark.parametrize(
    ("key", "value"), [(k, v) for k, vs in WRONG.items() if k in BY_HAND for v in vs]
)
def test_by_hand_and_config_give_the_same_line(composed, key: str, value: object) -> None:
    """One rule per key: a constructor given the value raises the line validate_config does."""
    with pytest.raises(ConfigError) as by_hand:
        BY_HAND[key](value)
    with pytest.raises(ConfigError) as in_config:
        validate_config(with_value(composed, key, value))
    assert str(by_hand.value) == str(in_config.value)


def test_check_returns_the_value_and_accepts_tuples() -> None:
    assert check("model.hidden", (20, 20)) == (20, 20)
    assert check("data.split", (0.7, 0.2, 0.1)) == (0.7, 0.2, 0.1)
    assert check("data.path", Path("x.csv")) == Path("x.csv")
    with pytest.raises(ConfigError) as err:
        check("model.lr", True)
    assert str(err.value) == "model.lr=True is not allowed: expected a number > 0"


def test_the_rules_choices_are_the_registries_they_stand_for() -> None:
    """One tuple per choice (seqforecast.names), the same object wherever it is imported from;
    where the owner keeps a table of its own (nets, baselines), it covers exactly those names."""
    from seqforecast import fast, intervals, models, names, rules
    from seqforecast.backtest import baselines, statistical
    from seqforecast.data import panel, scaling, table, transforms, windows
    from seqforecast.models import init, norm

    assert rules.NETS is models.NETS is names.NETS and rules.HEADS is models.HEADS
    assert rules.LAYERS is fast.LAYERS and rules.INITS is init.INITS is names.INITS
    assert rules.WINDOW_NORMS is norm.WINDOW_NORMS and rules.INTERVALS is intervals.INTERVALS
    assert rules.TARGETS is windows.TARGETS and rules.MAX_STEPS == windows.MAX_STEPS
    assert rules.SCALINGS is scaling.SCALINGS and rules.FILLS is table.FILLS
    assert rules.TRANSFORMS is transforms.TRANSFORMS and rules.CALENDAR is panel.CALENDAR
    assert rules.BASELINES is baselines.BASELINES
    assert rules.check_window is windows.check_window is models.check_window
    # the behaviour behind each name
    assert ("naive", "linear", *models.STACKS, *models.CONV_NETS) == models.NETS
    assert (*baselines.NUMPY_BASELINES, *statistical.STATISTICAL) == names.BASELINES


def test_a_logger_without_its_package_names_the_extra(tmp_path: Path, monkeypatch) -> None:
    import importlib.util

    cfg = compose_cfg(tmp_path, "logger=tensorboard")
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ConfigError) as err:
        validate_config(cfg)
    assert str(err.value) == (
        "logger lightning.pytorch.loggers.TensorBoardLogger needs tensorboard or tensorboardX, "
        'which is not installed: pip install -e ".[tensorboard]" (or pip install tensorboard)'
    )


@pytest.mark.parametrize(
    ("groups", "named"),
    [
        (["callbacks=early_stopping"], "callbacks=early_stopping watches"),
        (["scheduler=plateau"], "scheduler=plateau watches"),
        (["callbacks=early_stopping", "scheduler=plateau"], "and scheduler=plateau watch "),
    ],
)
def test_no_validation_refuses_what_watches_a_val_metric(tmp_path, groups, named) -> None:
    cfg = compose_cfg(tmp_path, *groups, "trainer.limit_val_batches=0")
    with pytest.raises(ConfigError, match="^trainer.limit_val_batches=0 runs no validation") as err:
        validate_config(cfg)
    assert named in str(err.value) and "\n" not in str(err.value)
    validate_config(compose_cfg(tmp_path, *groups))  # with validation: fine
    validate_config(compose_cfg(tmp_path, "trainer.limit_val_batches=0"))  # nothing watches

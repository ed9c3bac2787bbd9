"""``auto`` settings (seqforecast.auto): the season from a file's time column, n_steps from the
season, horizon and training rows, early stopping's patience from the run's validations."""

from __future__ import annotations

import copy
import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import CONF, ROOT, compose_cfg
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from seqforecast import auto
from seqforecast.backtest.task import backtest
from seqforecast.errors import ConfigError
from seqforecast.export import export_model
from seqforecast.predict import load_forecaster
from seqforecast.train import train

CHAPTER = sorted(p.stem for p in (CONF / "experiment" / "ch15").glob("*.yaml"))


def dates(freq: str, n: int = 40) -> list[pd.Series]:
    return [pd.Series(pd.date_range("2021-01-04", periods=n, freq=freq))]


@pytest.mark.parametrize(
    ("freq", "season"),
    [
        ("h", 24),
        ("D", 7),
        ("W-MON", 52),
        ("MS", 12),
        ("ME", 12),
        ("QS", 4),
        ("YS", 1),
        ("B", 5),  # business days: no weekend in the file
        ("15min", 96),
        ("5min", 288),
        ("min", 60),
        ("2h", 12),
        ("6h", 4),
        ("s", 1),
        ("14D", 1),  # fortnightly: no season named
    ],
)
def test_season_from_the_median_spacing(freq: str, season: int) -> None:
    assert auto.infer_season(dates(freq))[0] == season


def test_season_of_a_panel_uses_every_series_steps() -> None:
    # Two monthly series and a third with one odd step: the median spacing is still a month.
    times = [*dates("MS", 30), *dates("MS", 30)]
    times.append(pd.Series(pd.to_datetime(["2021-01-01", "2021-02-01", "2021-02-10"])))
    assert auto.infer_season(times) == (12, "monthly")


def test_no_dates_numeric_times_or_one_time_give_no_season() -> None:
    assert auto.infer_season(None)[0] == 1
    assert auto.infer_season([pd.Series(np.arange(30.0))])[0] == 1
    assert auto.infer_season(dates("D", 1))[0] == 1


def test_irregular_spacing_gives_no_season_and_says_so(caplog) -> None:
    rng = np.random.default_rng(0)
    days = np.cumsum(rng.choice([1, 3, 10, 40], size=60))
    times = [pd.Series(pd.Timestamp("2021-01-01") + pd.to_timedelta(days, unit="D"))]
    with caplog.at_level(logging.WARNING, logger="seqforecast.auto"):
        assert auto.infer_season(times) == (1, "irregular spacing")
    assert "season=auto: the time steps are irregular" in caplog.text


@pytest.mark.parametrize(
    ("season", "horizon", "rows", "n_steps"),
    [
        (12, 3, 50, 24),  # max(2 * 12, 2 * 3, 8) = 24 <= 50 - 3 - 7 = 40
        (12, 3, 30, 20),  # capped at 30 - 3 - 7 = 20 (8 training windows)
        (1, 1, 400, 8),  # no season: the floor of 8
        (4, 10, 100, 20),  # two horizons
        (52, 1, 100, 92),  # weekly: 104 capped at 100 - 1 - 7
        (1, 1, 9, 2),  # 9 - 1 - 7 = 1: the least window, 2 (7 training windows)
        (1, 2, 4, 2),  # exactly one window: 2 inputs + 2 targets
    ],
)
def test_n_steps_rule_by_hand(season: int, horizon: int, rows: int, n_steps: int) -> None:
    n = auto.auto_n_steps(season, horizon, rows)
    assert n == n_steps
    assert rows - n - horizon + 1 >= min(8, rows - 2 - horizon + 1)  # training windows


def test_n_steps_auto_without_a_window_is_one_line() -> None:
    with pytest.raises(ConfigError, match=r"^n_steps=auto: f.csv has 6 training rows, too few "):
        auto.auto_n_steps(1, 5, 6, "f.csv")


@pytest.mark.parametrize(
    ("trainer", "patience"),
    [
        ({"max_epochs": 20}, 3),
        ({"max_epochs": 45}, 5),  # ceil(4.5)
        ({"max_epochs": 200}, 20),
        ({"max_epochs": 200, "check_val_every_n_epoch": 5}, 4),  # 40 validations
        ({"max_epochs": 100, "val_check_interval": 0.25}, 40),  # 400 validations
        ({"max_epochs": 100, "val_check_interval": 10}, 10),  # every 10 batches: per epoch
        ({"max_epochs": -1}, 3),  # no limit
        ({"max_epochs": None, "max_steps": -1}, 100),  # Lightning's 1000 epochs
        ({"max_epochs": None, "max_steps": 500}, 3),
    ],
)
def test_patience_rule_by_hand(trainer: dict, patience: int) -> None:
    assert auto.auto_patience(OmegaConf.create(trainer)) == patience


@pytest.mark.parametrize("experiment", CHAPTER)
def test_chapter_runs_resolve_exactly_as_with_the_old_n_steps_50(experiment: str) -> None:
    """Generated data: n_steps=auto is the chapter's 50, season 1, early stopping's 3."""
    ours = [f"experiment=ch15/{experiment}", "callbacks=early_stopping"]
    found = compose_cfg(Path("unused"), *ours, tiny=False, resolve=False)
    old = copy.deepcopy(found)  # as composed before: n_steps=50 (no season), patience 3
    old.n_steps, old.season, old.callbacks.early_stopping.patience = 50, 1, 3
    assert (found.n_steps, found.season) == ("auto", "auto")
    auto.resolve(found)
    assert OmegaConf.to_container(found, resolve=True) == OmegaConf.to_container(old, resolve=True)
    assert found.model.n_steps == found.data.n_steps == 50 and found.model.season == 1


def monthly_csv(path: Path, rows: int = 96, time: str = "date", numeric: bool = False) -> Path:
    t = np.arange(rows)
    value = 10 + 0.1 * t + 3 * np.sin(2 * np.pi * t / 12)  # a trend and a yearly season
    times = t if numeric else pd.date_range("2015-01-01", periods=rows, freq="MS")
    pd.DataFrame({time: times, "value": value}).to_csv(path, index=False)
    return path


def file_cfg(out: Path, csv: Path, *overrides: str):
    return compose_cfg(
        out, "data=csv", f"data.path={csv}", "trainer.accelerator=cpu", *overrides, tiny=False
    )


@pytest.mark.parametrize(
    ("overrides", "season", "n_steps"),
    [
        (["data.time=date"], 12, 24),  # 67 training rows: 2 seasons
        (["data.time=date", "horizon=3", "data.split=[30,33,33]"], 12, 20),  # 30 - 3 - 7
        ([], 1, 8),  # no time column
        (["data.time=date", "season=4"], 4, 8),  # an integer overrides
        (["data.time=date", "n_steps=30"], 12, 30),
    ],
)
def test_file_settings_resolve_from_the_file(tmp_path, overrides, season, n_steps) -> None:
    cfg = file_cfg(tmp_path, monthly_csv(tmp_path / "m.csv"), *overrides)
    auto.resolve(cfg)
    assert (cfg.season, cfg.n_steps) == (season, n_steps)
    assert (cfg.model.season, cfg.data.season, cfg.model.n_steps, cfg.data.n_steps) == (
        season,
        season,
        n_steps,
        n_steps,
    )


def test_numeric_time_column_gives_no_season(tmp_path: Path) -> None:
    cfg = file_cfg(tmp_path, monthly_csv(tmp_path / "m.csv", numeric=True), "data.time=date")
    assert auto.resolve(cfg).season == 1


@pytest.mark.parametrize(
    ("overrides", "line"),
    [
        (["season=0"], "season=0 is not allowed: expected an integer >= 1, or auto in a train "),
        (["season=abc"], "season='abc' is not allowed: expected an integer >= 1, or auto in a "),
        (["callbacks=early_stopping", "callbacks.early_stopping.patience=-1"], "patience=-1 is"),
        (["data.split=[3,4,4]", "horizon=2", "data.time=date"], "n_steps=auto: "),
    ],
)
def test_bad_auto_settings_are_one_line(tmp_path: Path, overrides: list, line: str) -> None:
    cfg = file_cfg(tmp_path / "run", monthly_csv(tmp_path / "m.csv", rows=11), *overrides)
    with pytest.raises(ConfigError) as err:
        train(cfg)
    assert line in str(err.value) and "\n" not in str(err.value)


@pytest.fixture(scope="module")
def monthly_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A naive-model run (nothing to fit: fast) on a monthly file, season and n_steps auto,
    early stopping's patience auto for 60 epochs."""
    root = tmp_path_factory.mktemp("monthly")
    csv = monthly_csv(root / "m.csv")
    cfg = file_cfg(root / "run", csv, "data.time=date", "model=naive", "callbacks=early_stopping")
    cfg.trainer.max_epochs = 60
    return Path(train(cfg)["best_ckpt"])


def test_resolved_values_are_in_config_yaml_and_the_checkpoint(monthly_run: Path) -> None:
    stored = yaml.safe_load((monthly_run.parent.parent / "config.yaml").read_text())
    assert (stored["season"], stored["n_steps"]) == (12, 24)
    assert stored["model"]["season"] == stored["data"]["season"] == 12
    assert stored["callbacks"]["early_stopping"]["patience"] == 6  # ceil(0.1 * 60)
    forecaster = load_forecaster(monthly_run, device="cpu")
    assert (forecaster.season, forecaster.n_steps) == (12, 24)


def test_a_checkpoint_from_before_season_has_season_1() -> None:
    assert load_forecaster(ROOT / "tests" / "data" / "v0" / "seq2seq.ckpt", "cpu").season == 1


def test_the_export_sidecar_carries_the_season(monthly_run: Path, tmp_path: Path) -> None:
    _, sidecar = export_model(monthly_run, tmp_path, format="torchscript")
    assert json.loads(sidecar.read_text())["season"] == 12


def backtest_summary(ckpt: Path, out: Path, *overrides: str) -> dict:
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(
            "backtest",
            overrides=[f"output_dir={out}", f"ckpt_path={ckpt}", "device=cpu", *overrides],
        )
    return backtest(cfg)


@pytest.mark.parametrize(("overrides", "season"), [([], 12), (["season_length=3"], 3)])
def test_backtest_season_defaults_to_the_checkpoints(
    monthly_run: Path, tmp_path: Path, overrides: list, season: int
) -> None:
    summary = backtest_summary(
        monthly_run, tmp_path, "plot=false", "baselines=[seasonal_naive]", *overrides
    )
    assert summary["season_length"] == season
    frame = pd.read_csv(tmp_path / "backtest.csv")
    file = pd.read_csv(monthly_run.parents[2] / "m.csv")
    first = frame.iloc[0]  # the first origin, one step ahead
    cutoff = int(np.flatnonzero(file["date"] == first["cutoff"])[0])
    # One step ahead of the first origin: the value one season before the target.
    y = file["value"].to_numpy()
    want = y[cutoff + 1 - season]
    assert first["seasonal_naive"] == pytest.approx(want, abs=1e-4 * np.abs(y).max())

"""Rolling-origin backtests (scripts/backtest.py): origins, windows, metrics, the poisoned future,
batched forecasts, refits, the CLI and its bad options."""

from __future__ import annotations

import json
import math
import re
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import CONF, compose_cfg, run_script, scaled_tol
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, OmegaConf

from seqforecast import load_forecaster
from seqforecast.backtest.baselines import baseline_forecasts
from seqforecast.backtest.neural import model_forecasts
from seqforecast.backtest.origins import input_windows, span_cutoffs, target_rows
from seqforecast.backtest.refit import refit_split
from seqforecast.backtest.table import conformal_bounds, cv_frame, evaluate_frame
from seqforecast.backtest.task import backtest, format_summary
from seqforecast.data.example import panel_frame, write_example
from seqforecast.data.table import load_table
from seqforecast.errors import ConfigError
from seqforecast.train import train

ROWS, SPLIT = 300, (180, 80, 40)  # the example file's rows and the training split
N_STEPS = 20


def backtest_cfg(output_dir: Path, *overrides: str) -> DictConfig:
    """The real ``conf/backtest.yaml`` composed with ``overrides``."""
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose("backtest", overrides=[f"output_dir={output_dir}", *overrides])


def trained(root: Path, *overrides: str, run: str = "run") -> Path:
    """A checkpoint trained one epoch on the example file at ``root / sine.csv``, in
    ``root / run``."""
    csv = root / "sine.csv"
    if not csv.exists():
        write_example(csv, rows=ROWS)
    cfg = compose_cfg(
        root / run,
        "data=csv",
        f"data.path={csv}",
        "data.time=date",
        f"data.split=[{SPLIT[0]},{SPLIT[1]},{SPLIT[2]}]",
        f"n_steps={N_STEPS}",
        "trainer.max_epochs=1",
        "trainer.accelerator=cpu",
        "trainer.log_every_n_steps=1",  # a handful of batches an epoch
        "trainer.enable_model_summary=false",
        *overrides,
        tiny=False,
    )
    return Path(train(cfg)["best_ckpt"])


@pytest.fixture(scope="module")
def seq2seq(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A seq2seq checkpoint (horizon 10) trained on the 300-row example file."""
    return trained(tmp_path_factory.mktemp("bt"), "model=seq2seq")


@pytest.fixture(scope="module")
def forecaster(seq2seq: Path):
    return load_forecaster(seq2seq, device="cpu")


# --- origins and windows ---------------------------------------------------------------------


def test_origins_are_end_aligned_and_their_targets_stay_in_the_span() -> None:
    # Span rows 100..139 (40 rows), horizon 5: cutoffs 99..134 (36 of them).
    every = span_cutoffs(100, 140, 5)
    np.testing.assert_array_equal(every, np.arange(99, 135))
    some = span_cutoffs(100, 140, 5, n_windows=4, step_size=10)
    np.testing.assert_array_equal(some, [104, 114, 124, 134])
    rows = target_rows(some, 5)
    assert rows.min() >= 100 and rows.max() == 139
    np.testing.assert_array_equal(rows[0], [105, 106, 107, 108, 109])
    assert len(span_cutoffs(100, 140, 5, step_size=7)) == 6  # 0, 7, .., 35 <= 40 - 5


def test_a_backtest_longer_than_the_span_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"n_windows=5 x step_size=10 does not fit the test span"):
        span_cutoffs(100, 140, 5, n_windows=5, step_size=10)  # 4 x 10 + 5 = 45 > 40 rows
    with pytest.raises(ConfigError, match=r"horizon=41 is longer than the test span"):
        span_cutoffs(100, 140, 41)


def test_input_windows_are_the_rows_up_to_each_origin() -> None:
    table = np.arange(60.0).reshape(30, 2)  # [R=30, F=2]
    cutoffs = np.array([4, 7, 10, 13])
    x = input_windows(table, cutoffs, 5)
    assert x.shape == (4, 5, 2) and np.shares_memory(x, table)  # evenly spaced: a view
    for i, c in enumerate(cutoffs):
        np.testing.assert_array_equal(x[i], table[c - 4 : c + 1])
    uneven = np.array([4, 9, 29])
    x = input_windows(table, uneven, 5)
    for i, c in enumerate(uneven):
        np.testing.assert_array_equal(x[i], table[c - 4 : c + 1])


# --- metrics and intervals through the table code, against numpy by hand ---------------------


def test_metrics_against_numpy_by_hand() -> None:
    history = np.array([1.0, 3.0, 2.0, 5.0, 4.0, 6.0])  # training rows
    actual = np.array([[2.0, 4.0], [5.0, -1.0], [0.0, 3.0]])  # [n=3, h=2]
    forecast = np.array([[1.0, 4.5], [5.0, 1.0], [0.0, 2.0]])
    bounds = {80: (forecast - 1.0, forecast + 1.0)}
    times = np.arange(6, 12).reshape(3, 2)
    df = cv_frame("s", np.array([5, 7, 9]), times, actual, {"m": (forecast, bounds)})
    assert list(df.columns) == ["unique_id", "ds", "cutoff", "y", "m", "m-lo-80", "m-hi-80"]
    train = pd.DataFrame({"unique_id": "s", "ds": np.arange(6), "y": history})
    got = evaluate_frame(df, train, ["m"], [80], season=2)
    overall = got[got["step"] == "all"].set_index("metric")["m"]
    # Absolute errors: 1, 0.5 / 0, 2 / 0, 1.
    scale = np.mean([abs(2 - 1), abs(5 - 3), abs(4 - 2), abs(6 - 5)])  # lag-2 naive: 1.5
    assert overall["mae"] == pytest.approx(4.5 / 6)
    assert overall["rmse"] == pytest.approx(math.sqrt((1 + 0.25 + 4 + 1) / 6))
    assert overall["mase"] == pytest.approx((4.5 / 6) / scale)
    smape = [1 / 3, 0.5 / 8.5, 0, 2 / 2, 0, 1 / 5]  # |e| / (|y| + |f|); 0/0 counts as 0
    assert overall["smape"] == pytest.approx(np.mean(smape))
    assert overall["coverage_level80"] == pytest.approx(5 / 6)  # only -1 vs [0, 2] misses
    # Winkler: width 2, plus 2 / 0.2 times the miss (1) for the one outside.
    assert overall["winkler_score_level80"] == pytest.approx((6 * 2 + 10 * 1) / 6)
    # Scaled CRPS: the bounds as quantiles 0.1 and 0.9; twice their mean pinball loss over
    # the mean absolute actual.
    e = np.stack([actual - (forecast - 1), actual - (forecast + 1)])  # [2, n, h]
    q = np.array([0.1, 0.9])[:, None, None]
    pinball = np.maximum(q * e, (q - 1) * e).mean()
    assert overall["scaled_crps"] == pytest.approx(2 * pinball / np.abs(actual).mean())
    step2 = got[got["step"] == 2].set_index("metric")["m"]
    assert step2["mae"] == pytest.approx(3.5 / 3)
    assert step2["mase"] == pytest.approx((3.5 / 3) / scale)
    assert list(got["step"].unique()) == ["all", 1, 2]


def test_conformal_half_width_is_the_ranked_calibration_error_per_step() -> None:
    rng = np.random.default_rng(1)
    cal_actual, cal_forecast = rng.normal(size=(19, 3)), rng.normal(size=(19, 3))
    forecast = np.zeros((2, 3))
    bounds = conformal_bounds(cal_actual, cal_forecast, forecast, [80, 95])
    errors = np.sort(np.abs(cal_actual - cal_forecast), axis=0)
    # ceil((19 + 1) * 0.8) = 16th and ceil(20 * 0.95) = 19th smallest of each column.
    np.testing.assert_allclose(bounds[80][1][0], errors[15])
    np.testing.assert_allclose(bounds[95][0][1], -errors[18])


# --- the checkpoint's forecasts ---------------------------------------------------------------


@pytest.mark.parametrize("horizon", [10, 23])  # direct; iterative past the model's 10 steps
def test_batched_forecasts_equal_one_by_one(forecaster, horizon: int) -> None:
    values = load_table(forecaster.data["path"], ["value"], "date").values  # [R, 1]
    cutoffs = span_cutoffs(SPLIT[0] + SPLIT[1], ROWS, horizon, step_size=3)
    batched = model_forecasts(forecaster, values, cutoffs, horizon, batch_size=5)
    assert batched.shape == (len(cutoffs), horizon)
    scaler = forecaster.scaler
    for i, c in enumerate(cutoffs):
        window = (values[c - N_STEPS + 1 : c + 1, 0] - scaler.center[0]) / scaler.scale[0]
        one = forecaster.predict(window[np.newaxis].astype(np.float32), horizon)[0]
        want = one * scaler.scale[0] + scaler.center[0]
        # Batches of 5 and of 1 take different float32 kernel paths, whose rounding differs
        # by CPU: equal to float32 rounding of the forecasts' magnitude.
        np.testing.assert_allclose(batched[i], want, **scaled_tol(want, 1e-5))


def test_multivariate_windows_carry_every_input_column(tmp_path: Path) -> None:
    ckpt = trained(tmp_path, "model=linear", "data.inputs=[aux]")
    model = load_forecaster(ckpt, device="cpu")
    values = load_table(model.data["path"], ["value", "aux"], "date").values  # [R, 2]
    cutoffs = span_cutoffs(SPLIT[0] + SPLIT[1], ROWS, 1, n_windows=6, step_size=5)
    got = model_forecasts(model, values, cutoffs, 1)  # [6, 1]
    center, scale = model.scaler.center, model.scaler.scale
    for i, c in enumerate(cutoffs):
        window = ((values[c - N_STEPS + 1 : c + 1] - center) / scale).astype(np.float32)
        want = model.predict(window[np.newaxis])[0] * scale[0] + center[0]  # [20, 2] -> [1]
        np.testing.assert_allclose(got[i], want, **scaled_tol(want, 1e-5))


def poisoned_forecasts_stay(forecaster, baselines: list[str], poison: float) -> None:
    """Forecast from every test origin (2 rows apart), then again with every row after each
    origin poisoned: no model's forecast from that origin or an earlier one may move."""
    values = load_table(forecaster.data["path"], ["value"], "date").values.astype(np.float64)
    cutoffs = span_cutoffs(SPLIT[0] + SPLIT[1], ROWS, 10, step_size=2)
    fit_rows = np.full(len(cutoffs), SPLIT[0])

    def forecasts(values: np.ndarray, n: int) -> dict[str, np.ndarray]:
        out = {"rnn": model_forecasts(forecaster, values, cutoffs[:n], 10, 64)}
        for b in baselines:
            out[b] = baseline_forecasts(b, values[:, 0], cutoffs[:n], 10, 7, fit_rows[:n])[0]
        return out

    clean = forecasts(values, len(cutoffs))
    for i, c in enumerate(cutoffs):
        poisoned = values.copy()
        poisoned[c + 1 :] = poison  # every row after origin i
        for model, f in forecasts(poisoned, i + 1).items():
            # Other batch sizes may round differently; a leak shows as NaN or a large change.
            want = clean[model][: i + 1]
            np.testing.assert_allclose(f, want, **scaled_tol(want, 1e-6), err_msg=model)


@pytest.mark.parametrize("poison", [np.nan, 1e30], ids=["nan", "huge"])
def test_no_forecast_moves_when_the_future_is_poisoned(forecaster, poison: float) -> None:
    poisoned_forecasts_stay(forecaster, ["naive", "seasonal_naive", "drift"], poison)


@pytest.mark.slow
@pytest.mark.parametrize("poison", [np.nan, 1e30], ids=["nan", "huge"])
def test_no_statistical_forecast_moves_when_the_future_is_poisoned(forecaster, poison) -> None:
    pytest.importorskip("statsforecast")
    poisoned_forecasts_stay(forecaster, ["auto_arima", "auto_ets"], poison)


# --- the task: files and their numbers --------------------------------------------------------


def test_backtest_writes_the_long_table_and_metrics_that_recompute_by_hand(
    seq2seq: Path, tmp_path: Path
) -> None:
    out = tmp_path / "bt"
    cfg = backtest_cfg(
        out,
        f"ckpt_path={seq2seq}",
        "n_windows=8",
        "step_size=4",
        "horizon=6",
        "season_length=7",
        "device=cpu",
    )
    summary = backtest(cfg)
    table = pd.read_csv(out / "backtest.csv")
    models = ["rnn", "naive", "seasonal_naive", "drift"]
    bands = ["lo-95", "lo-80", "hi-80", "hi-95"]  # statsforecast's order
    want = [m + s for m in models for s in ["", *(f"-{b}" for b in bands)]]
    assert list(table.columns) == ["unique_id", "ds", "cutoff", "y", *want]
    assert len(table) == 8 * 6 and set(table["unique_id"]) == {"value"}  # the target column
    series = pd.read_csv(load_forecaster(seq2seq, "cpu").data["path"])
    y, dates = series["value"].to_numpy(), series["date"].to_numpy()
    # The last origin's targets end at the file's last row; origins are 4 rows apart.
    last = table.tail(6)
    np.testing.assert_array_equal(last["ds"], dates[-6:])
    # The table's values went through float32 and a CSV: float32 rounding of the series.
    np.testing.assert_allclose(last["y"], y[-6:], **scaled_tol(y, 1e-6))
    np.testing.assert_allclose(last["naive"], y[-7], **scaled_tol(y, 1e-6))  # the origin's
    np.testing.assert_array_equal(
        table["cutoff"].unique(), dates[ROWS - 7 - 4 * np.arange(7, -1, -1)]
    )
    # Metrics from the long table with numpy, against metrics.csv and metrics.json.
    scale = np.mean(np.abs(y[7 : SPLIT[0]] - y[: SPLIT[0] - 7]))  # training rows, lag 7
    metrics = pd.read_csv(out / "metrics.csv")
    overall = metrics[metrics["step"] == "all"].set_index("metric")
    step3 = metrics[metrics["step"] == "3"].set_index("metric")
    saved = json.loads((out / "metrics.json").read_text())
    third = table.groupby("cutoff").nth(2)  # step 3 of each origin
    for model in models:
        err = table["y"] - table[model]
        inside = (table["y"] >= table[f"{model}-lo-80"]) & (table["y"] <= table[f"{model}-hi-80"])
        assert overall.loc["mae", model] == pytest.approx(np.abs(err).mean(), rel=1e-6)
        assert overall.loc["rmse", model] == pytest.approx(np.sqrt((err**2).mean()), rel=1e-6)
        assert overall.loc["mase", model] == pytest.approx(np.abs(err).mean() / scale, rel=1e-6)
        assert overall.loc["coverage_level80", model] == pytest.approx(inside.mean())
        assert saved["models"][model]["mase"] == pytest.approx(overall.loc["mase", model])
        mae3 = np.abs(third["y"] - third[model]).mean()
        assert step3.loc["mae", model] == pytest.approx(mae3, rel=1e-6)
    assert summary["n_origins"] == 8 and summary["calibration_origins"] == SPLIT[1] - 6 + 1
    assert summary["ckpt_path"] == {"rnn": str(seq2seq)} and summary["fitted_models"] == {}
    assert (out / "backtest.png").stat().st_size > 0


def test_a_statistical_model_is_fitted_once_per_backtest_and_named(
    seq2seq: Path, tmp_path: Path, monkeypatch
) -> None:
    models = pytest.importorskip("statsforecast.models")
    fits, fit = [], models.AutoETS.fit
    monkeypatch.setattr(models.AutoETS, "fit", lambda self, y: fits.append(len(y)) or fit(self, y))
    args = ["baselines=[auto_ets]", "season_length=30", "device=cpu", "plot=false"]
    summary = backtest(backtest_cfg(tmp_path / "bt", f"ckpt_path={seq2seq}", *args))
    assert fits == [SPLIT[0]]  # the training rows, once for the val and the test origins
    # Season 30 is past AutoETS's 24: statsforecast fits no seasonal component, and says so.
    fitted = summary["fitted_models"]["auto_ets"]["value"]
    assert re.fullmatch(r"ETS\([AM],(N|A|Ad),N\)", fitted), fitted
    assert f"fitted:   auto_ets {fitted} (season_length=30)" in format_summary(summary)


def test_intervals_are_calibrated_on_the_val_span(forecaster, seq2seq: Path, tmp_path) -> None:
    out = tmp_path / "bt"
    backtest(backtest_cfg(out, f"ckpt_path={seq2seq}", "horizon=4", "device=cpu", "levels=[90]"))
    table = pd.read_csv(out / "backtest.csv")
    values = load_table(forecaster.data["path"], ["value"], "date").values  # [R, 1]
    y = values[:, 0].astype(np.float64)
    cal = np.arange(SPLIT[0] - 1, SPLIT[0] + SPLIT[1] - 4)  # every val origin, step 1
    errors = np.abs(y[target_rows(cal, 4)] - np.repeat(y[cal][:, None], 4, axis=1))  # naive
    rank = math.ceil((len(cal) + 1) * 0.9)
    width = np.sort(errors, axis=0)[rank - 1]  # [4]
    half = (table["naive-hi-90"] - table["naive"]).to_numpy().reshape(-1, 4)
    np.testing.assert_allclose(half, np.broadcast_to(width, half.shape), **scaled_tol(y, 1e-6))


def test_refit_retrains_on_the_history_up_to_each_group(
    seq2seq: Path, forecaster, tmp_path: Path
) -> None:
    before = seq2seq.read_bytes()
    out = tmp_path / "bt"
    cfg = backtest_cfg(
        out,
        f"ckpt_path={seq2seq}",
        "n_windows=4",
        "step_size=10",
        "refit=2",
        "device=cpu",
        "plot=false",
    )
    assert backtest(cfg)["refits"] == 2
    folders = sorted((out / "refits").iterdir())
    assert [f.name for f in folders] == ["origin-0000", "origin-0002"]
    cutoffs = span_cutoffs(SPLIT[0] + SPLIT[1], ROWS, 10, 4, 10)  # rows 259, 269, 279, 289
    values = load_table(forecaster.data["path"], ["value"], "date").values  # [R, 1]
    table = pd.read_csv(out / "backtest.csv")
    got = table["rnn"].to_numpy().reshape(4, 10)
    for k, folder in enumerate(folders):
        history = pd.read_csv(folder / "history.csv")
        c = cutoffs[2 * k]
        want = values[: c + 1, 0]
        np.testing.assert_allclose(history["value"], want, **scaled_tol(want, 1e-7))  # up to c
        split = OmegaConf.load(folder / "config.yaml").data.split
        assert list(split) == [c + 1 - SPLIT[1], SPLIT[1] - 30, 30]  # window 20 + 10
        # The group's forecasts are the retrained checkpoint's.
        model = load_forecaster(folder / "checkpoints" / "best.ckpt", "cpu")
        want = model_forecasts(model, values, cutoffs[2 * k : 2 * k + 2], 10)
        np.testing.assert_allclose(got[2 * k : 2 * k + 2], want, **scaled_tol(want, 1e-6))
    # At the first test origin the training rows are the original ones: the same scaler.
    refit = load_forecaster(folders[0] / "checkpoints" / "best.ckpt", "cpu")
    np.testing.assert_allclose(refit.scaler.center, forecaster.scaler.center)
    np.testing.assert_allclose(refit.scaler.scale, forecaster.scaler.scale)
    assert seq2seq.read_bytes() == before  # the original run is left as it was


def test_refit_split_keeps_the_original_training_rows_or_says_why_not() -> None:
    # History of 260 rows (train 180 + val 80), window 30: train 180, val 50, test 30.
    assert refit_split(260, 80, 30) == [180, 50, 30]
    with pytest.raises(ConfigError, match=r"refit needs a val split of at least 2 x .* = 60 rows"):
        refit_split(260, 50, 30)


# --- several checkpoints, panels --------------------------------------------------------------


@pytest.fixture(scope="module")
def linear(seq2seq: Path) -> Path:
    """A linear checkpoint (horizon 10) on the same file and split as ``seq2seq``."""
    return trained(seq2seq.parent.parent.parent, "model=linear", "horizon=10", run="linear")


def test_several_checkpoints_share_one_run_and_each_keeps_its_own_forecasts(
    seq2seq: Path, linear: Path, tmp_path: Path
) -> None:
    args = ["n_windows=5", "step_size=3", "device=cpu", "plot=false", "levels=[80]"]
    backtest(backtest_cfg(tmp_path / "one", f"ckpt_path={seq2seq}", *args))
    both = backtest_cfg(tmp_path / "two", f"ckpt_path=[{seq2seq},{linear}]", *args)
    summary = backtest(both)
    assert summary["ckpt_path"] == {"rnn": str(seq2seq), "linear": str(linear)}
    one, two = (pd.read_csv(tmp_path / d / "backtest.csv") for d in ("one", "two"))
    assert list(two.columns[4:7]) == ["rnn", "rnn-lo-80", "rnn-hi-80"]
    assert list(two.columns[7:10]) == ["linear", "linear-lo-80", "linear-hi-80"]
    pd.testing.assert_frame_equal(two[one.columns], one)  # the rnn and baselines unchanged
    model = load_forecaster(linear, "cpu")
    values = load_table(model.data["path"], ["value"], "date").values  # [R, 1]
    cutoffs = span_cutoffs(SPLIT[0] + SPLIT[1], ROWS, 10, 5, 3)
    want = model_forecasts(model, values, cutoffs, 10).reshape(-1)
    np.testing.assert_allclose(two["linear"], want, **scaled_tol(want, 1e-6))
    named = backtest_cfg(tmp_path / "3", f"ckpt_path=[{seq2seq},{linear}]", "name=[a,b]", *args)
    assert list(backtest(named)["models"]) == ["a", "b", "naive", "seasonal_naive", "drift"]


def test_several_checkpoints_refit_each_in_a_folder_of_its_own(
    seq2seq: Path, linear: Path, tmp_path: Path
) -> None:
    out = tmp_path / "bt"
    args = ["n_windows=2", "step_size=10", "refit=2", "device=cpu", "plot=false"]
    backtest(backtest_cfg(out, f"ckpt_path=[{seq2seq},{linear}]", *args))
    table = pd.read_csv(out / "backtest.csv")
    values = load_table(load_forecaster(linear, "cpu").data["path"], ["value"], "date").values
    cutoffs = span_cutoffs(SPLIT[0] + SPLIT[1], ROWS, 10, 2, 10)
    for name in ("rnn", "linear"):
        model = load_forecaster(out / "refits" / name / "origin-0000/checkpoints/best.ckpt", "cpu")
        assert model.hparams["net"] == name
        want = model_forecasts(model, values, cutoffs, 10).reshape(-1)
        np.testing.assert_allclose(table[name], want, **scaled_tol(want, 1e-6))


def test_checkpoints_with_other_data_settings_are_refused_naming_both(
    seq2seq: Path, tmp_path: Path, run_main
) -> None:
    ckpt = torch.load(seq2seq, map_location="cpu", weights_only=True)
    ckpt["datamodule_hyper_parameters"]["split"] = [170, 90, 40]
    other = tmp_path / "other.ckpt"
    torch.save(ckpt, other)
    proc = run_main("backtest.py", f"ckpt_path=[{seq2seq},{other}]", "device=cpu", cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        f"error: checkpoints {seq2seq} and {other} differ in data.split ([180, 80, 40] vs "
        "[170, 90, 40]); checkpoints backtested together must share their rows and split"
    )


def test_a_checkpoint_without_the_newer_data_settings_still_backtests(
    seq2seq: Path, tmp_path: Path
) -> None:
    """Checkpoints written before data.id, season and scaling_scope were stored."""
    ckpt = torch.load(seq2seq, map_location="cpu", weights_only=True)
    for key in ("id", "season", "scaling_scope", "future_inputs", "calendar"):
        ckpt["datamodule_hyper_parameters"].pop(key, None)
    old = tmp_path / "old.ckpt"
    torch.save(ckpt, old)
    args = ["n_windows=3", "device=cpu", "plot=false"]
    summary = backtest(backtest_cfg(tmp_path / "old", f"ckpt_path={old}", *args))
    assert summary["season_length"] == 1 and summary["series"] == 1
    backtest(backtest_cfg(tmp_path / "new", f"ckpt_path={seq2seq}", "season_length=1", *args))
    old_t, new_t = (pd.read_csv(tmp_path / d / "backtest.csv") for d in ("old", "new"))
    pd.testing.assert_frame_equal(old_t, new_t)


@pytest.fixture(scope="module")
def panel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A linear checkpoint on a panel: series s000..s002 of 100 daily rows, and s009 of 15 rows,
    too short for training (skipped there) and so for the backtest."""
    root = tmp_path_factory.mktemp("panel")
    frame = panel_frame(series=3, rows=100, seed=7)
    short = panel_frame(series=1, rows=15, seed=8).assign(series="s009")
    frame = pd.concat([frame, short])
    frame.to_csv(root / "panel.csv", index=False)
    cfg = compose_cfg(
        root / "run",
        "data=csv",
        f"data.path={root / 'panel.csv'}",
        "data.id=series",
        "data.time=date",
        "data.split=[0.6,0.2,0.2]",
        "model=linear",
        "n_steps=8",
        "horizon=3",
        "trainer.max_epochs=1",
        "trainer.log_every_n_steps=1",
        "trainer.accelerator=cpu",
        "trainer.enable_model_summary=false",
        tiny=False,
    )
    return Path(train(cfg)["best_ckpt"])


def test_a_panel_backtests_every_series_with_its_own_scaling_and_baselines(
    panel: Path, tmp_path: Path
) -> None:
    out = tmp_path / "bt"
    summary = backtest(backtest_cfg(out, f"ckpt_path={panel}", "device=cpu", "n_windows=4"))
    assert summary["series"] == 3 and len(summary["skipped"]) == 1
    assert summary["skipped"][0].startswith("s009: ")
    table = pd.read_csv(out / "backtest.csv")
    uids = ["s000", "s001", "s002"]
    assert list(table["unique_id"].unique()) == uids  # the series' ids
    model = load_forecaster(panel, "cpu")
    frame = pd.read_csv(panel.parent.parent.parent / "panel.csv")
    metrics = pd.read_csv(out / "metrics.csv")
    for s, uid in enumerate(uids):
        y = frame[frame["series"] == uid]["value"].to_numpy()  # [100]
        rows = table[table["unique_id"] == uid]
        assert len(rows) == 4 * 3
        c = 100 - 3 - 1  # the last origin's cutoff row
        last = rows.tail(3)
        np.testing.assert_allclose(last["naive"], y[c], **scaled_tol(y, 1e-6))
        # The network, its window scaled by this series' own training statistics.
        center, scale = model.scaler.center[s], model.scaler.scale[s]
        x = ((y[c - 7 : c + 1] - center[0]) / scale[0]).astype(np.float32)
        want = model.predict(x[np.newaxis])[0] * scale[0] + center[0]
        np.testing.assert_allclose(last["linear"], want, **scaled_tol(want, 1e-5))
        # MASE against this series' own training rows (60 of 100), lag: the season (daily: 7).
        err, m = np.abs(rows["y"] - rows["linear"]).mean(), summary["season_length"]
        mase = err / np.abs(y[m:60] - y[: 60 - m]).mean()
        got = metrics[(metrics["unique_id"] == uid) & (metrics["step"] == "all")]
        assert got.set_index("metric").loc["mase", "linear"] == pytest.approx(mase, rel=1e-5)
    means = metrics[metrics["step"] == "all"].groupby("metric")["linear"].mean()
    assert summary["models"]["linear"]["mae"] == pytest.approx(means["mae"])


def test_a_panel_with_refit_is_refused_in_one_line(panel: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^refit=2 retrains on one series' history; a panel"):
        backtest(backtest_cfg(tmp_path / "bt", f"ckpt_path={panel}", "refit=2", "device=cpu"))
    assert not (tmp_path / "bt").exists()
    with pytest.raises(
        ConfigError,
        match=r"^none of the 4 series of .*panel.csv can be backtested; the first: n_windows=50 ",
    ):
        backtest(backtest_cfg(tmp_path / "bt", f"ckpt_path={panel}", "n_windows=50"))


def test_without_utilsforecast_the_backtest_says_how_to_install(
    seq2seq: Path, tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.setitem(sys.modules, "utilsforecast", None)  # import utilsforecast fails
    with pytest.raises(ConfigError, match=r"^a backtest is scored by utilsforecast: pip install"):
        backtest(backtest_cfg(tmp_path / "bt", f"ckpt_path={seq2seq}"))
    assert not (tmp_path / "bt").exists()


# --- the command line -------------------------------------------------------------------------


@pytest.mark.slow
def test_cli_writes_the_run_folder_and_prints_the_table(seq2seq: Path, tmp_path: Path) -> None:
    proc = run_script(
        "backtest.py", f"ckpt_path={seq2seq}", "n_windows=5", "device=cpu", cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr
    assert "seasonal_naive" in proc.stdout and "mase" in proc.stdout
    (run,) = (tmp_path / "outputs" / "backtest").glob("*/*")
    for name in ("backtest.csv", "metrics.csv", "metrics.json", "backtest.png", "config.yaml"):
        assert (run / name).is_file(), name


BAD_OPTIONS = [
    (
        ["levels=[0,95]"],
        r"levels=\[0, 95\] is not allowed: expected null or a list of distinct percentages",
    ),
    (["levels=[80,100]"], r"levels=\[80, 100\] is not allowed"),
    (["season_length=180"], r"season_length=180 must be an integer from 1 to 179"),
    (["n_windows=40"], r"n_windows=40 x step_size=1 does not fit the test span"),
    (["horizon=41"], r"horizon=41 is longer than the test span"),
    (["baselines=[naive,prophet]"], r"baselines=\['naive', 'prophet'\] is not allowed"),
    (["refit=0"], r"refit=0 is not allowed: expected never or an integer >= 1"),
    (["step_size=0"], r"step_size=0 is not allowed"),
    (["input=missing.csv"], r"data file not found: missing.csv"),
    (["name=[a,b]"], r"name=\['a', 'b'\] gives 2 names for 1 checkpoints \(ckpt_path\)"),
    (["name=naive"], r"name='naive' is also a baseline's"),
    (["name=[a,a]"], r"name=\['a', 'a'\] is not allowed: expected a non-empty string or a list"),
    (["horizon=0"], r"horizon=0 is not allowed"),
]


@pytest.mark.parametrize(("overrides", "match"), BAD_OPTIONS, ids=[o[0] for o, _ in BAD_OPTIONS])
def test_bad_options_stop_in_one_line_with_exit_2(
    seq2seq: Path, tmp_path: Path, run_main, overrides: list[str], match: str
) -> None:
    proc = run_main("backtest.py", f"ckpt_path={seq2seq}", "device=cpu", *overrides, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert re.search(match, lines[0]), lines[0]


def test_a_checkpoint_not_trained_on_a_file_is_refused(tmp_path: Path, run_main) -> None:
    ckpt = Path(train(compose_cfg(tmp_path / "run", "model=naive"))["best_ckpt"])
    proc = run_main("backtest.py", f"ckpt_path={ckpt}", "device=cpu", cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        f"error: checkpoint {ckpt} was not trained on a file (data=csv); a backtest needs the "
        "file's rows and split"
    )

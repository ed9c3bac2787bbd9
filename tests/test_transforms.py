"""Target transforms (``data.transform``: log, boxcox): the maps against numpy by hand, the
Box-Cox lambda against scipy, refusals, old checkpoints, and forecasts, intervals and metrics
inverted to the data's units (torch, ``load_forecaster``, ONNX)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import CONF, compose_cfg, scaled_tol
from omegaconf import DictConfig

from seqforecast import load_forecaster
from seqforecast.data.files import FileDataModule
from seqforecast.data.scaling import Scaler
from seqforecast.data.transforms import TargetTransform, fit_boxcox_lambda
from seqforecast.errors import ConfigError, InputError
from seqforecast.evaluate import unit_errors
from seqforecast.module import ForecastModule
from seqforecast.train import train

N_STEPS, HORIZON = 12, 3


def growing_frame(rows: int = 160, seed: int = 0) -> pd.DataFrame:
    """A positive series with exponential growth and a multiplicative season of 12, daily
    dates (``date``, ``value``, and a positive ``aux`` input)."""
    t = np.arange(rows)
    rng = np.random.default_rng(seed)
    value = 50 * np.exp(0.01 * t) * (1 + 0.3 * np.sin(2 * np.pi * t / 12))
    value *= np.exp(rng.normal(0, 0.02, rows))
    dates = pd.date_range("2020-01-01", periods=rows, freq="D").strftime("%Y-%m-%d")
    return pd.DataFrame({"date": dates, "value": value, "aux": 1 + t % 7})


@pytest.fixture(scope="module")
def growing_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("growing") / "growing.csv"
    growing_frame().to_csv(path, index=False)
    return path


def module_on(path: Path, **kw) -> FileDataModule:
    args = {"path": str(path), "time": "date", "n_steps": N_STEPS, "horizon": HORIZON}
    dm = FileDataModule(**{**args, **kw})
    dm.setup()
    return dm


# --- the maps against numpy by hand -----------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "lam"),
    [("log", None), ("boxcox", 0.5), ("boxcox", -0.7), ("boxcox", 0.0), ("boxcox", 1e-9)],
)
def test_forward_and_inverse_against_numpy_by_hand(name: str, lam: float | None) -> None:
    y = np.geomspace(0.01, 5e3, 50).reshape(5, 10)
    t = TargetTransform(name, lam)
    if name == "log" or lam == 0:
        want = np.log(y)
    elif abs(lam) < 1e-6:  # y**lam - 1 cancels: its Taylor series in lam instead
        want = np.log(y) * (1 + lam * np.log(y) / 2)
    else:
        want = (y**lam - 1) / lam
    z = t.forward(y)
    np.testing.assert_allclose(z, want, **scaled_tol(want, 1e-12))
    np.testing.assert_allclose(t.inverse(z), y, rtol=1e-10)
    assert z.shape == y.shape


def test_scaler_with_log_against_numpy_and_round_trip() -> None:
    """Column 0 is logged before the standard scaling, other columns are only scaled; the
    inverse of column 0 undoes both, of column 1 only the scaling."""
    rng = np.random.default_rng(3)
    x = np.column_stack([rng.uniform(1, 100, 40), rng.normal(0, 5, 40)])  # aux may be < 0
    scaler = Scaler("standard", TargetTransform("log")).fit(x[:30])
    logged = np.log(x[:30, 0])
    mean, std = (
        np.array([logged.mean(), x[:30, 1].mean()]),
        np.array([logged.std(), x[:30, 1].std()]),
    )
    want = (np.column_stack([np.log(x[:, 0]), x[:, 1]]) - mean) / std
    got = scaler.transform(x)
    np.testing.assert_allclose(got, want, **scaled_tol(want, 1e-6))
    np.testing.assert_allclose(scaler.inverse(got[:, 0]), x[:, 0], rtol=1e-6)
    np.testing.assert_allclose(scaler.inverse(got[:, 1], 1), x[:, 1], **scaled_tol(x[:, 1], 1e-6))


def test_boxcox_inverse_outside_its_range_is_clipped_finite_and_positive() -> None:
    """``lam * z + 1 <= 0``: the smallest positive float for lam > 0, the largest for lam < 0."""
    tiny, big = np.finfo(np.float64).tiny, np.finfo(np.float64).max
    assert TargetTransform("boxcox", 0.5).inverse(np.array([-2.0, -5.0])).tolist() == [tiny] * 2
    assert TargetTransform("boxcox", -0.5).inverse(np.array([2.0, 9.0])).tolist() == [big] * 2
    assert TargetTransform("boxcox", 0.5).inverse(np.array([0.0])).tolist() == [1.0]


# --- the Box-Cox lambda against scipy ---------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_boxcox_lambda_is_scipys_maximum_likelihood(seed: int) -> None:
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(seed)
    samples = [
        rng.lognormal(2, 0.6, 300),
        rng.gamma(3, 2, 200),
        (rng.normal(10, 1, 250)) ** 2,
    ]
    for y in samples:
        _, want = stats.boxcox(y)
        assert -1 < want < 2  # inside the searched range
        assert fit_boxcox_lambda(y) == pytest.approx(want, abs=1e-4)


def test_file_boxcox_lambda_is_fitted_on_the_training_rows(growing_csv: Path) -> None:
    stats = pytest.importorskip("scipy.stats")
    dm = module_on(growing_csv, transform="boxcox")
    value = pd.read_csv(growing_csv)["value"].to_numpy(np.float32).astype(np.float64)
    train_rows = value[: round(0.7 * len(value))]
    assert dm.scaler.target.lam == pytest.approx(stats.boxcox(train_rows)[1], abs=1e-4)
    z = (train_rows**dm.scaler.target.lam - 1) / dm.scaler.target.lam
    assert dm.scaler.center[0] == pytest.approx(z.mean(), rel=1e-6)
    fixed = module_on(growing_csv, transform="boxcox", boxcox_lambda=0.25)
    assert fixed.scaler.target.lam == 0.25
    state = fixed.state_dict()["scaler"]["transform"]
    assert state == {"name": "boxcox", "lambda": 0.25}


def test_a_panel_has_one_lambda_and_its_scaling_per_series_after_it(tmp_path: Path) -> None:
    stats = pytest.importorskip("scipy.stats")
    parts = [growing_frame(60, seed=s).assign(store=f"s{s}") for s in range(3)]
    for s, part in enumerate(parts):
        part["value"] *= 10**s  # levels 50, 500, 5000
    path = tmp_path / "panel.csv"
    pd.concat(parts).to_csv(path, index=False)
    dm = module_on(path, id="store", transform="boxcox")
    train = [p["value"].to_numpy(np.float32).astype(np.float64)[:42] for p in parts]
    lam = stats.boxcox(np.concatenate(train))[1]
    assert dm.scaler.target.lam == pytest.approx(lam, abs=1e-4)
    for s, y in enumerate(train):
        z = (y**dm.scaler.target.lam - 1) / dm.scaler.target.lam
        assert dm.scaler.center[s, 0] == pytest.approx(z.mean(), rel=1e-6)
        assert dm.scaler.scale[s, 0] == pytest.approx(z.std(), rel=1e-6)
        scaled = dm.scaler.transform(y[:, None], s)[:, 0]
        np.testing.assert_allclose(dm.scaler.inverse(scaled, 0, s), y, rtol=1e-5)


# --- refusals, one line each ------------------------------------------------------------------


@pytest.mark.parametrize("transform", ["log", "boxcox"])
@pytest.mark.parametrize(("row", "value"), [(5, 0.0), (140, -2.5)])  # train rows; test rows
def test_non_positive_target_names_file_column_row_and_value(
    tmp_path: Path, transform: str, row: int, value: float
) -> None:
    frame = growing_frame()
    frame.loc[row, "value"] = value
    path = tmp_path / "bad.csv"
    frame.to_csv(path, index=False)
    with pytest.raises(InputError) as err:
        module_on(path, transform=transform)
    msg = str(err.value)
    assert "\n" not in msg
    assert msg.startswith(f"{path}: the target column 'value' holds {value:g} at row {row + 1}")
    assert f"date {frame['date'][row]}" in msg
    assert f"data.transform={transform} needs positive values" in msg
    assert "use data.transform=none" in msg


def test_bad_settings_are_refused_by_name(tmp_path: Path) -> None:
    from seqforecast.config import validate_config

    def cfg(*overrides: str) -> DictConfig:
        return compose_cfg(tmp_path, "data=csv", *overrides, tiny=False)

    with pytest.raises(ConfigError, match=r"data.transform='sqrt' is not allowed: expected"):
        validate_config(cfg("data.transform=sqrt"))
    with pytest.raises(ConfigError, match=r"data.boxcox_lambda='a' is not allowed"):
        validate_config(cfg("data.boxcox_lambda=a"))
    validate_config(cfg("data.transform=boxcox", "data.boxcox_lambda=0.5"))
    with pytest.raises(ConfigError, match=r"data.boxcox_lambda=0.5 fixes .* data.transform=log"):
        FileDataModule(transform="log", boxcox_lambda=0.5)


def test_malformed_stored_transform_is_one_line() -> None:
    state = Scaler("standard").fit(np.ones((3, 1)) * [[2.0]]).to_dict()
    for bad in ({"name": "sqrt"}, {"name": "boxcox", "lambda": None}, "log"):
        with pytest.raises(InputError, match=r"stored target transform is .*; expected"):
            Scaler.from_dict({**state, "transform": bad})


# --- checkpoints written before data.transform ------------------------------------------------


def test_a_state_without_the_transform_key_loads_as_before(growing_csv: Path) -> None:
    """``none`` writes exactly the old state (no ``transform`` key); such a state loads to
    the plain scaling (inverse = ``x * scale + center``), and a new module loading it too."""
    dm = module_on(growing_csv)
    state = dm.state_dict()
    assert set(state["scaler"]) == {"kind", "center", "scale"}
    old = Scaler.from_dict(state["scaler"])
    assert old.target.name == "none"
    z = np.linspace(-2, 2, 9)
    want = z * state["scaler"]["scale"][0] + state["scaler"]["center"][0]
    assert old.inverse(z).tolist() == want.tolist()  # bit for bit
    logged = module_on(growing_csv, transform="log").state_dict()
    legacy = {**logged, "scaler": {k: v for k, v in logged["scaler"].items() if k != "transform"}}
    fresh = FileDataModule(path=str(growing_csv), transform="log")
    fresh.load_state_dict(legacy)  # what was stored is what runs: no transform
    assert fresh.scaler.target.name == "none"
    np.testing.assert_array_equal(
        fresh.scaler.inverse(z), z * fresh.scaler.scale[0] + fresh.scaler.center[0]
    )


# --- forecasts and metrics in the data's units ------------------------------------------------


def test_unit_errors_with_log_against_numpy(growing_csv: Path) -> None:
    """A random model's forecasts exp'd back by hand from the training rows' log statistics."""
    dm = FileDataModule(path=str(growing_csv), n_steps=N_STEPS, horizon=HORIZON, transform="log")
    torch.manual_seed(0)
    model = ForecastModule(net="gru", hidden=[8], head="linear", n_steps=N_STEPS, horizon=HORIZON)
    errors, _ = unit_errors(model, dm)
    value = pd.read_csv(growing_csv)["value"].to_numpy(np.float32).astype(np.float64)
    logged = np.log(value)
    mean, std = logged[:112].mean(), logged[:112].std()  # 0.7 of 160 training rows
    for stage, lo, hi in (("val", 112, 144), ("test", 144, 160)):
        origins = range(lo - 1, hi - HORIZON)
        x = np.stack([logged[o - N_STEPS + 1 : o + 1] for o in origins])[..., None]
        with torch.inference_mode():
            out = model(torch.tensor((x - mean) / std, dtype=torch.float32)).double().numpy()
        pred = np.exp(out * std + mean)  # [n, k]
        actual = np.stack([value[o + 1 : o + 1 + HORIZON] for o in origins])
        assert errors[f"{stage}/mae"] == pytest.approx(np.abs(pred - actual).mean(), rel=1e-5)
        rmse = np.sqrt(((pred - actual) ** 2).mean())
        assert errors[f"{stage}/rmse"] == pytest.approx(rmse, rel=1e-5)


def file_cfg(out: Path, data: Path, *overrides: str) -> DictConfig:
    tiny = [
        f"n_steps={N_STEPS}",
        f"horizon={HORIZON}",
        "data.time=date",
        "data.batch_size=64",
        "trainer.accelerator=cpu",
        "trainer.enable_model_summary=false",
        "trainer.enable_progress_bar=false",
        "trainer.max_epochs=1",
        "trainer.log_every_n_steps=1",
    ]
    return compose_cfg(out, "data=csv", f"data.path={data}", *tiny, *overrides, tiny=False)


@pytest.fixture(scope="module")
def log_run(tmp_path_factory: pytest.TempPathFactory, growing_csv: Path) -> tuple[Path, dict]:
    """One epoch of the linear model on the growing series with ``data.transform=log``."""
    run = tmp_path_factory.mktemp("log") / "run"
    metrics = train(file_cfg(run, growing_csv, "model=linear", "data.transform=log"))
    return run / "checkpoints" / "best.ckpt", metrics


def test_training_metrics_in_units_equal_numpy_from_the_predictions(
    log_run: tuple[Path, dict], growing_csv: Path
) -> None:
    ckpt, metrics = log_run
    stored = torch.load(ckpt, weights_only=True)["FileDataModule"]["scaler"]
    assert stored["transform"] == {"name": "log", "lambda": None}
    f = load_forecaster(ckpt, "cpu")
    value = pd.read_csv(growing_csv)["value"].to_numpy(np.float32).astype(np.float64)
    center, scale = stored["center"][0], stored["scale"][0]
    origins = range(143, 160 - HORIZON)  # the test rows 144..159
    x = np.stack([np.log(value[o - N_STEPS + 1 : o + 1]) for o in origins])  # [n, T]
    pred = np.exp(f.predict((x - center) / scale).astype(np.float64) * scale + center)
    actual = np.stack([value[o + 1 : o + 1 + HORIZON] for o in origins])
    assert metrics["test/mae"] == pytest.approx(np.abs(pred - actual).mean(), rel=1e-5)
    assert metrics["test/rmse"] == pytest.approx(np.sqrt(((pred - actual) ** 2).mean()), rel=1e-5)


def test_forecast_and_bounds_are_exp_of_the_scaled_space_ones(
    log_run: tuple[Path, dict], growing_csv: Path
) -> None:
    f = load_forecaster(log_run[0], "cpu")
    table = f.forecast_table(growing_csv, levels=[80, 95])
    value = pd.read_csv(growing_csv)["value"].to_numpy(np.float32).astype(np.float64)
    center, scale = f.scaler.center[0], f.scaler.scale[0]
    x = (np.log(value[-N_STEPS:]) - center) / scale
    point, bounds = f.predict_intervals(x[None], HORIZON, [80, 95])  # scaled space
    units = lambda v: np.exp(v[0].astype(np.float64) * scale + center)  # noqa: E731
    np.testing.assert_allclose(table["value"], units(point), rtol=1e-5)
    for i, level in enumerate(("80", "95")):
        lo, hi = units(bounds[..., i, 0]), units(bounds[..., i, 1])
        np.testing.assert_allclose(table[f"lo-{level}"], lo, rtol=1e-5)
        np.testing.assert_allclose(table[f"hi-{level}"], hi, rtol=1e-5)
        # symmetric in log space: the upper side is the wider one in units
        assert ((hi - table["value"]) > (table["value"] - lo)).all()


def test_forecast_input_with_a_non_positive_target_is_one_line(
    log_run: tuple[Path, dict], tmp_path: Path
) -> None:
    frame = growing_frame()
    frame.loc[len(frame) - 4, "value"] = -1.0
    f = load_forecaster(log_run[0], "cpu")
    with pytest.raises(InputError) as err:
        f.forecast_table(frame)
    assert str(err.value) == (
        "input request: the target column 'value' holds -1 at row 9 of the last n_steps = 12 "
        "rows; data.transform=log needs positive values (log and boxcox alike): use "
        "data.transform=none, or a column above 0"
    )


def test_backtest_forecasts_are_in_units_and_a_non_positive_input_is_refused(
    log_run: tuple[Path, dict], growing_csv: Path, tmp_path: Path
) -> None:
    from hydra import compose, initialize_config_dir

    from seqforecast.backtest.task import backtest

    f = load_forecaster(log_run[0], "cpu")
    value = pd.read_csv(growing_csv)["value"].to_numpy(np.float32).astype(np.float64)

    def cfg(out: Path, *overrides: str) -> DictConfig:
        args = [f"ckpt_path={log_run[0]}", "device=cpu", "plot=false", "baselines=[naive]"]
        with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
            return compose("backtest", overrides=[f"output_dir={out}", *args, *overrides])

    backtest(cfg(tmp_path / "bt", "n_windows=4", "step_size=2"))
    table = pd.read_csv(tmp_path / "bt" / "backtest.csv")
    center, scale = f.scaler.center[0], f.scaler.scale[0]
    for o in (150, 152, 154, 156):  # the last test origins, 2 rows apart (row index)
        x = (np.log(value[o - N_STEPS + 1 : o + 1]) - center) / scale
        want = np.exp(f.predict(x[None])[0].astype(np.float64) * scale + center)
        got = table[table["cutoff"] == pd.read_csv(growing_csv)["date"][o]]["linear"]
        np.testing.assert_allclose(got, want, rtol=1e-5)
    frame = growing_frame()
    frame.loc[20, "value"] = 0.0
    bad = tmp_path / "bad.csv"
    frame.to_csv(bad, index=False)
    with pytest.raises(
        InputError,
        match=rf"^input {re.escape(str(bad))}: the target column 'value' holds 0 at "
        r"row 21 of its 160, date 2020-01-21 00:00:00; data.transform=log needs",
    ):
        backtest(cfg(tmp_path / "refused", f"input={bad}"))
    assert not (tmp_path / "refused").exists()


def test_service_rows_answer_in_units_and_refuse_a_non_positive_target(
    log_run: tuple[Path, dict],
) -> None:
    """ForecastAPI in-process: a table's rows forecast as exp of the scaled forecast, with
    bounds exp'd the same way; a request holding 0 in the target is a 422 naming it."""
    from seqforecast.serve.api import ForecastAPI

    api = ForecastAPI(str(log_run[0]), max_batch_size=4)
    api.setup("cpu")
    f, frame = api.forecaster, growing_frame()
    rows = frame[["date", "value"]].tail(N_STEPS).to_dict("records")
    bad = [dict(r) for r in rows]
    bad[-1]["value"] = 0.0
    bodies = [{"rows": rows, "levels": [80]}, {"rows": bad}]
    out = api.predict(api.batch([api.decode_request(body) for body in bodies]))
    value = frame["value"].to_numpy(np.float32).astype(np.float64)
    center, scale = f.scaler.center[0], f.scaler.scale[0]
    x = (np.log(value[-N_STEPS:]) - center) / scale
    point, bounds = f.predict_intervals(x[None], HORIZON, [80])
    units = lambda v: np.exp(v[0].astype(np.float64) * scale + center)  # noqa: E731
    np.testing.assert_allclose(out[0]["forecasts"][0], units(point), rtol=1e-5)
    np.testing.assert_allclose(
        out[0]["intervals"]["80"]["lo"][0], units(bounds[..., 0, 0]), rtol=1e-5
    )
    np.testing.assert_allclose(
        out[0]["intervals"]["80"]["hi"][0], units(bounds[..., 0, 1]), rtol=1e-5
    )
    assert out[1].status == 422
    assert "holds 0 at row 12 of the last n_steps = 12 rows; data.transform=log" in out[1].message


def test_onnx_sidecar_transform_is_checked_in_one_line() -> None:
    from seqforecast.onnx import check_data

    scaler = {"center": [1.0], "scale": [2.0]}
    check_data({"data_state": {"scaler": {**scaler, "transform": {"name": "log"}}}}, 1)
    for bad in ({"name": "exp"}, {"name": "boxcox", "lambda": "x"}, [1]):
        info = {"data_state": {"scaler": {**scaler, "transform": bad}}}
        with pytest.raises(InputError, match=r"^data_state.scaler.transform is .*; expected"):
            check_data(info, 1)


# --- ONNX -------------------------------------------------------------------------------------


@pytest.mark.slow
def test_onnx_forecast_rows_equal_torch_with_boxcox(tmp_path: Path, growing_csv: Path) -> None:
    """A boxcox checkpoint exported: ORT's forecast and bounds in units equal torch's."""
    pytest.importorskip("onnxruntime")
    from seqforecast.export import export_model
    from seqforecast.onnx import OnnxForecaster

    run = tmp_path / "run"
    train(file_cfg(run, growing_csv, "model=gru", "data.transform=boxcox"))
    ckpt = run / "checkpoints" / "best.ckpt"
    export_model(ckpt, tmp_path / "out")
    onnx, torch_side = OnnxForecaster(tmp_path / "out"), load_forecaster(ckpt, "cpu")
    assert onnx.scaler.target.to_dict() == torch_side.scaler.target.to_dict()
    assert onnx.scaler.target.name == "boxcox"
    frame = growing_frame()
    rows, times = frame[["value"]].to_numpy(), pd.to_datetime(frame["date"]).to_numpy()
    for ahead, levels in [(HORIZON, [80.0, 95.0]), (7, [])]:
        got = onnx.forecast_rows(rows, ahead, levels=levels, times=times)
        want = torch_side.forecast_table(frame, ahead, levels=levels)
        for column in want.columns.drop(["step", "date"]):
            np.testing.assert_allclose(got[column], want[column], rtol=1e-5)
    bad = frame[["value"]].to_numpy().copy()
    bad[-1] = 0.0
    refusal = r"^rows: the target column \(feature 0\) holds 0 at row 160 of 160; data.transform="
    with pytest.raises(InputError, match=refusal + "boxcox needs positive values"):
        onnx.forecast_rows(bad)

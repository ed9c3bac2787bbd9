"""File data (``data=csv``): reading, split, windows, scaling, training, predicting past the end."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import MODEL_OPTIONS, compose_cfg, scaled_tol
from omegaconf import DictConfig

from seqforecast import load_forecaster
from seqforecast.core import future_times
from seqforecast.data.example import example_frame, write_example
from seqforecast.data.files import FileDataModule
from seqforecast.data.scaling import Scaler
from seqforecast.data.splits import resolve_split
from seqforecast.data.table import load_table
from seqforecast.errors import ConfigError, InputError
from seqforecast.evaluate import unit_errors
from seqforecast.module import ForecastModule
from seqforecast.train import train

FILE_TINY = [
    "n_steps=20",
    "data.batch_size=64",
    "trainer.accelerator=cpu",
    "trainer.enable_model_summary=false",
    "trainer.log_every_n_steps=1",
]


def file_cfg(out: Path, data: Path, *overrides: str) -> DictConfig:
    """The real config with ``data=csv`` on ``data`` and small windows."""
    return compose_cfg(out, "data=csv", f"data.path={data}", *FILE_TINY, *overrides, tiny=False)


def write_csv(path: Path, frame: pd.DataFrame) -> Path:
    frame.to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def sine_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example CSV, 400 daily rows (read only: tests write their files elsewhere)."""
    return write_example(tmp_path_factory.mktemp("sine") / "sine.csv", rows=400)


@pytest.fixture
def ramp_csv(tmp_path: Path) -> Path:
    """``value`` = 0..19, ``aux`` = 100 + 2 * value, daily dates."""
    dates = pd.date_range("2021-01-01", periods=20, freq="D").strftime("%Y-%m-%d")
    value = np.arange(20.0)
    return write_csv(
        tmp_path / "ramp.csv", pd.DataFrame({"date": dates, "value": value, "aux": 100 + 2 * value})
    )


# --- windows and split boundaries -------------------------------------------------------------


def ramp_module(path: Path, **kw) -> FileDataModule:
    args = {"path": str(path), "split": [10, 5, 5], "scaling": "none", "n_steps": 3, "horizon": 2}
    dm = FileDataModule(**{**args, **kw})
    dm.setup()
    return dm


def test_train_windows_stay_inside_train_and_eval_targets_inside_their_split(
    ramp_csv: Path,
) -> None:
    dm = ramp_module(ramp_csv)
    x, y = dm.arrays("train")
    # Rows 0..9: windows start at 0..5 (the last target, rows 8 and 9, is still train).
    assert x.shape == (6, 3, 1) and y.shape == (6, 2)
    np.testing.assert_array_equal(x[0, :, 0], [0, 1, 2])
    np.testing.assert_array_equal(y[0], [3, 4])
    np.testing.assert_array_equal(y[-1], [8, 9])
    assert y.max() < 10  # no training target lies in val/test
    # Val rows 10..14: forecasts from origins 9..12, inputs from the rows before them.
    xv, yv = dm.arrays("val")
    np.testing.assert_array_equal(xv[:, :, 0], [[7, 8, 9], [8, 9, 10], [9, 10, 11], [10, 11, 12]])
    np.testing.assert_array_equal(yv, [[10, 11], [11, 12], [12, 13], [13, 14]])
    xt, yt = dm.arrays("test")  # test rows 15..19: origins 14..17
    np.testing.assert_array_equal(xt[[0, -1], :, 0], [[12, 13, 14], [15, 16, 17]])
    np.testing.assert_array_equal(yt, [[15, 16], [16, 17], [17, 18], [18, 19]])
    assert dm.bounds == (0, 10, 15, 20)


def test_seq2seq_windows_and_multivariate_order(ramp_csv: Path) -> None:
    dm = ramp_module(ramp_csv, target_kind="seq2seq", inputs=["aux"])
    x, y = dm.arrays("train")
    assert x.shape == (6, 3, 2) and y.shape == (6, 3, 2)
    np.testing.assert_array_equal(x[0], [[0, 100], [1, 102], [2, 104]])  # target first
    np.testing.assert_array_equal(y[0], [[1, 2], [2, 3], [3, 4]])  # y[t, j] = value[t + 1 + j]
    np.testing.assert_array_equal(y[-1, -1], [8, 9])
    assert dm.n_features == 2


def test_split_by_fractions_and_by_dates(ramp_csv: Path) -> None:
    rows = "the 20 rows of ramp.csv"
    assert resolve_split([0.7, 0.2, 0.1], 20, rows) == (14, 4, 2)
    times = pd.Series(pd.date_range("2021-01-01", periods=20, freq="D"))
    assert resolve_split(["2021-01-11", "2021-01-16"], 20, rows, times) == (10, 5, 5)
    dm = ramp_module(ramp_csv, split=["2021-01-11", "2021-01-16"], time="date")
    assert dm.bounds == (0, 10, 15, 20)
    with pytest.raises(ConfigError, match=r"needs file data with a date column in data.time"):
        resolve_split(["2021-01-11", "2021-01-16"], 20, rows)
    with pytest.raises(ConfigError, match=r"the val start must come before the test start"):
        resolve_split(["2021-01-16", "2021-01-11"], 20, rows, times)
    with pytest.raises(ConfigError, match=r"data.split=\['soon', 'later'\]: not dates"):
        resolve_split(["soon", "later"], 20, rows, times)
    expected = "expected three counts summing to 20 or three fractions summing to 1"
    for split in ([0.5, 0.2, 0.1], [10, 5, 4]):
        with pytest.raises(ConfigError) as err:
            resolve_split(split, 20, rows)
        assert str(err.value) == f"data.split={split} does not fit {rows}: {expected}"
    with pytest.raises(ConfigError, match=r"^data.split=\[10, 5\] is not allowed: expected three"):
        FileDataModule(path=str(ramp_csv), split=[10, 5])


@pytest.mark.parametrize("split", [[0.55, 0.25, 0.2], [11, 5, 4]])
@pytest.mark.parametrize("kind", ["next", "seq2seq"])
def test_file_splits_equal_an_independent_numpy_windowing(
    ramp_csv: Path, split: list, kind: str
) -> None:
    """Every window of the whole file, kept by a loop where its forecast target row falls:
    train also keeps its inputs in rows 0..10; val's target in 11..15, test's in 16..19."""
    dm = ramp_module(ramp_csv, split=split, inputs=["aux"], target_kind=kind, horizon=1)
    frame = pd.read_csv(ramp_csv)[["value", "aux"]].to_numpy(np.float32)
    starts = {"train": [], "val": [], "test": []}
    for s in range(len(frame) - 3):  # n_steps 3, horizon 1: the target is row s + 3
        stage = "train" if s + 3 < 11 else "val" if s + 3 < 16 else "test"
        starts[stage].append(s)
    for stage, kept in starts.items():
        x, y = dm.arrays(stage)
        np.testing.assert_array_equal(x, np.stack([frame[s : s + 3] for s in kept]))
        if kind == "next":
            expected = np.stack([frame[s + 3 : s + 4, 0] for s in kept])  # [N, 1]
        else:
            expected = np.stack([frame[s + 1 : s + 4, :1] for s in kept])  # [N, 3, 1]
        np.testing.assert_array_equal(y, expected)
    assert [len(starts[s]) for s in starts] == [8, 5, 4]  # val and test: one per row
    assert dm.bounds == (0, 11, 16, 20)


# --- scaling ----------------------------------------------------------------------------------


def test_scaler_fits_train_rows_only(tmp_path: Path, ramp_csv: Path) -> None:
    frame = pd.read_csv(ramp_csv)
    frame.loc[10:, ["value", "aux"]] *= 1000  # change every val/test value
    changed = write_csv(tmp_path / "changed.csv", frame)
    a = ramp_module(ramp_csv, scaling="standard", inputs=["aux"])
    b = ramp_module(changed, scaling="standard", inputs=["aux"])
    np.testing.assert_array_equal(a.scaler.center, b.scaler.center)
    np.testing.assert_array_equal(a.scaler.scale, b.scaler.scale)
    train_rows = np.stack([np.arange(10.0), 100 + 2 * np.arange(10.0)], axis=1)
    np.testing.assert_allclose(a.scaler.center, train_rows.mean(axis=0))
    np.testing.assert_allclose(a.scaler.scale, train_rows.std(axis=0))
    x, _ = a.arrays("train")
    np.testing.assert_allclose(x[0, 0, 0], (0 - 4.5) / np.arange(10.0).std(), rtol=1e-6)
    m = ramp_module(ramp_csv, scaling="minmax")
    np.testing.assert_allclose([m.scaler.center[0], m.scaler.scale[0]], [0, 9])


@pytest.mark.parametrize("kind", ["standard", "minmax", "none"])
def test_inverse_scaling_round_trips(kind: str) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(5, 3, size=(50, 3)) * [1, 10, 0.1]
    scaler = Scaler(kind).fit(x[:30])
    scaled = scaler.transform(x)
    for j in range(3):
        np.testing.assert_allclose(scaler.inverse(scaled[:, j], j), x[:, j], rtol=1e-5, atol=1e-5)
    again = Scaler.from_dict(json.loads(json.dumps(scaler.to_dict())))
    np.testing.assert_array_equal(again.transform(x), scaled)


def test_constant_column_scales_by_one() -> None:
    scaler = Scaler("standard").fit(np.full((5, 1), 3.0))
    np.testing.assert_array_equal(scaler.transform(np.array([[3.0], [4.0]]))[:, 0], [0, 1])


# --- training and predicting ------------------------------------------------------------------


def test_example_csv_is_the_two_sine_series(tmp_path: Path) -> None:
    from seqforecast.data import two_sine_series

    frame = pd.read_csv(write_example(tmp_path / "e.csv", rows=30))
    assert list(frame.columns) == ["date", "value", "aux"] and len(frame) == 30
    np.testing.assert_allclose(frame["value"], two_sine_series(1, 30, seed=42)[0, :, 0], atol=1e-6)
    assert frame["date"].iloc[-1] == "2020-01-30"
    assert example_frame(30).equals(example_frame(30))


def test_train_reports_original_unit_errors(tmp_path: Path, sine_csv: Path) -> None:
    """Naive model (nothing fitted): MAE/RMSE in data units against numpy on the raw column."""
    cfg = file_cfg(tmp_path / "run", sine_csv, "model=naive", "horizon=3", "data.scaling=minmax")
    metrics = train(cfg)
    value = pd.read_csv(sine_csv)["value"].to_numpy()
    # Split [0.7, 0.2, 0.1] of 400 rows: test is rows 360..399, forecast from origins 359..396.
    n = 40 - 3 + 1
    last = np.stack([value[359 : 359 + n]] * 3, axis=1)  # [n, 3] the origin's value
    future = np.stack([value[360 + j : 360 + j + n] for j in range(3)], axis=1)  # [n, 3]
    assert metrics["test/mae"] == pytest.approx(np.abs(future - last).mean(), rel=1e-5)
    assert metrics["test/rmse"] == pytest.approx(np.sqrt(((future - last) ** 2).mean()), rel=1e-5)
    lo, hi = value[:280].min(), value[:280].max()  # minmax on the 280 training rows
    scaled_mse = (((future - last) / (hi - lo)) ** 2).mean()
    assert metrics["test/mse"] == pytest.approx(scaled_mse, rel=1e-4)
    saved = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert saved["test/mae"] == metrics["test/mae"]


@pytest.mark.parametrize("kind", ["next", "seq2seq"])
def test_unit_errors_against_numpy(sine_csv: Path, kind: str) -> None:
    """A random model's forecasts, unscaled by hand from the raw column's training statistics."""
    dm = FileDataModule(path=str(sine_csv), n_steps=20, horizon=3, target_kind=kind)
    torch.manual_seed(0)
    head = "per_step" if kind == "seq2seq" else "linear"
    model = ForecastModule(net="gru", hidden=[8], head=head, n_steps=20, horizon=3, target=kind)
    errors, per_series = unit_errors(model, dm)
    value = pd.read_csv(sine_csv)["value"].to_numpy()
    mean, std = value[:280].mean(), value[:280].std()  # standard scaling on the 280 train rows
    for stage, lo, hi in (("val", 280, 360), ("test", 360, 400)):
        origins = range(lo - 1, hi - 3)  # every forecast whose 3 targets lie in lo..hi - 1
        x = np.stack([value[o - 19 : o + 1] for o in origins])[..., None]  # [n, 20, 1]
        with torch.inference_mode():
            scaled = torch.tensor((x - mean) / std, dtype=torch.float32)
            out = model(scaled).numpy()
        pred = (out[:, -1] if kind == "seq2seq" else out) * std + mean  # [n, 3]
        actual = np.stack([value[o + 1 : o + 4] for o in origins])  # [n, 3]
        assert errors[f"{stage}/mae"] == pytest.approx(np.abs(pred - actual).mean(), rel=1e-5)
        rmse = np.sqrt(((pred - actual) ** 2).mean())
        assert errors[f"{stage}/rmse"] == pytest.approx(rmse, rel=1e-5)
    assert set(errors) == {"val/mae", "val/rmse", "test/mae", "test/rmse"}
    assert per_series == []  # one series: no per-series table


@pytest.mark.slow
@pytest.mark.parametrize("inputs", ["[]", "[aux]"])
@pytest.mark.parametrize("option", MODEL_OPTIONS)
def test_every_model_trains_on_file_data(
    tmp_path: Path, sine_csv: Path, option: str, inputs: str
) -> None:
    cfg = file_cfg(
        tmp_path, sine_csv, f"model={option}", f"data.inputs={inputs}", "debug=fast_dev_run"
    )
    metrics = train(cfg)
    assert np.isfinite(metrics["test/mse"]) and np.isfinite(metrics["test/rmse"])
    if option == "linear":  # Dense(n_steps * n_features -> 1): the width comes from the data
        assert metrics["params"] == 20 * (2 if inputs == "[aux]" else 1) + 1


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory: pytest.TempPathFactory, sine_csv: Path) -> Path:
    """A 1-epoch seq2seq model (horizon 10) on the example CSV with its date column."""
    run = tmp_path_factory.mktemp("trained") / "run"
    train(file_cfg(run, sine_csv, "model=seq2seq", "data.time=date", "trainer.max_epochs=1"))
    return run / "checkpoints" / "best.ckpt"


def test_checkpoint_carries_the_scaler_as_plain_numbers(trained_run: Path, sine_csv: Path) -> None:
    ckpt = torch.load(trained_run, weights_only=True)
    stored = ckpt["FileDataModule"]["scaler"]
    value = pd.read_csv(sine_csv)["value"].to_numpy()[:280]
    assert stored["kind"] == "standard"
    np.testing.assert_allclose(stored["center"], [value.mean()], rtol=1e-5)
    np.testing.assert_allclose(stored["scale"], [value.std()], rtol=1e-4)
    assert ckpt["datamodule_hyper_parameters"]["target_column"] == "value"


def test_predict_past_the_end_matches_a_hand_forecast(
    trained_run: Path, sine_csv: Path, tmp_path: Path, run_main
) -> None:
    f = load_forecaster(trained_run, device="cpu")
    table = f.forecast_table(sine_csv, ahead=7)
    # float32 values, as the table reads the file: the same input, not one rounded differently
    rows = pd.read_csv(sine_csv)["value"].to_numpy(np.float32)[-20:].astype(np.float64)
    x = torch.tensor((rows - f.scaler.center[0]) / f.scaler.scale[0], dtype=torch.float32)
    with torch.inference_mode():
        y = f.module.forecast(x.view(1, 20, 1))[0, :7].numpy()
    want = y * f.scaler.scale[0] + f.scaler.center[0]
    np.testing.assert_allclose(table["value"], want, **scaled_tol(want, 1e-5))
    assert list(table.columns) == ["step", "date", "value"]
    assert list(table["step"]) == list(range(1, 8))
    expected = pd.date_range("2021-02-04", periods=7, freq="D")  # the file ends 2021-02-03
    assert list(table["date"]) == list(expected)

    out = tmp_path / "pred"
    result = run_main(
        "predict.py",
        f"ckpt_path={trained_run}",
        f"input={sine_csv}",
        "ahead=28",
        "progress=false",
        f"hydra.run.dir={out}",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    written = pd.read_csv(out / "predictions.csv")
    assert len(written) == 28 and written["date"].iloc[-1] == "2021-03-03"
    assert "iterative" in result.stdout
    want = table["value"]
    np.testing.assert_allclose(written["value"][:7], want, **scaled_tol(want, 1e-6))
    assert np.load(out / "predictions.npy").shape == (1, 28)
    assert (out / "forecast.png").stat().st_size > 0


def test_future_timestamps_follow_the_spacing() -> None:
    months = pd.Series(pd.date_range("2020-01-01", periods=6, freq="MS"))
    assert list(future_times(months, 2, "t")) == list(pd.to_datetime(["2020-07-01", "2020-08-01"]))
    hours = pd.Series(pd.date_range("2020-01-01 22:00", periods=4, freq="h"))
    assert future_times(hours, 1, "t").iloc[0] == pd.Timestamp("2020-01-02 02:00")
    np.testing.assert_allclose(future_times(pd.Series([0.0, 0.5, 1.0]), 2, "t"), [1.5, 2.0])
    with pytest.raises(InputError, match=r"time column 't' is irregularly spaced"):
        future_times(pd.Series(pd.to_datetime(["2020-01-01", "2020-01-02", "2020-01-05"])), 1, "t")
    with pytest.raises(InputError, match=r"irregularly spaced"):
        future_times(pd.Series([0.0, 1.0, 3.5]), 1, "t")


# --- bad input --------------------------------------------------------------------------------


def test_missing_file_and_misspelt_column(tmp_path: Path, ramp_csv: Path) -> None:
    with pytest.raises(InputError, match=r"data file not found: .*nope.csv"):
        load_table(tmp_path / "nope.csv", ["value"])
    with pytest.raises(
        InputError, match=r"no column \['vlaue'\]; the file has columns \['date', 'value', 'aux'\]"
    ):
        load_table(ramp_csv, ["vlaue"])
    with pytest.raises(InputError, match=r"must be one of"):
        load_table(tmp_path / "x.xlsx", ["value"])


def test_non_numeric_value_names_column_and_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("value,aux\n1,2\n3,oops\n5,6\n")
    with pytest.raises(
        InputError, match=r"column 'aux' holds a non-numeric value 'oops' at line 3"
    ):
        load_table(path, ["value", "aux"])


def test_missing_values_are_errors_unless_filled(tmp_path: Path) -> None:
    path = tmp_path / "holes.csv"
    path.write_text("value,aux\n1,10\n,20\n3,\n4,40\n")
    with pytest.raises(
        InputError, match=r"2 missing values \{'value': 1, 'aux': 1\} \(first at line 3\); set "
    ):
        load_table(path, ["value", "aux"])
    ff = load_table(path, ["value", "aux"], fill="ffill").values
    np.testing.assert_array_equal(ff, [[1, 10], [1, 20], [3, 20], [4, 40]])
    lin = load_table(path, ["value", "aux"], fill="interpolate").values
    np.testing.assert_array_equal(lin, [[1, 10], [2, 20], [3, 30], [4, 40]])
    dropped = load_table(path, ["value", "aux"], fill="drop").values
    np.testing.assert_array_equal(dropped, [[1, 10], [4, 40]])


def bad_cell_csv(path: Path, cell: str, time: bool) -> Path:
    """Twenty daily rows of ``value`` and ``aux``; ``aux`` on line 13 (2020-01-12) is ``cell``."""
    lines = [f"2020-01-{d:02d},{d},{10 + d}" for d in range(1, 21)]
    lines[11] = f"2020-01-12,12,{cell}"
    if not time:
        lines = [line.split(",", 1)[1] for line in lines]
    path.write_text(("date," if time else "") + "value,aux\n" + "\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize("cell", ["1e300", "-inf", "inf", "3.5e38"])
@pytest.mark.parametrize("time", [True, False], ids=["dated", "undated"])
def test_a_value_beyond_float32_names_file_column_row_and_count(
    tmp_path: Path, cell: str, time: bool
) -> None:
    path = bad_cell_csv(tmp_path / "data.csv", cell, time)
    where = "line 13, date 2020-01-12" if time else "line 13"
    shown = f"{float(cell):g}"
    expected = (
        f"{path}: column 'aux' holds {shown} at {where}, infinite or too large for float32 "
        "(|x| > 3.403e+38); first of 1 such value in the file; expected finite numbers"
    )
    for fill in (None, "ffill", "drop"):  # a fill mends empty cells, not wrong numbers
        with pytest.raises(InputError) as err:
            load_table(path, ["value", "aux"], time="date" if time else None, fill=fill)
        assert str(err.value) == expected


def test_bad_values_are_counted_and_the_first_named(tmp_path: Path) -> None:
    path = tmp_path / "data.csv"
    path.write_text("value,aux\n1,2\n3,4\n5,1e39\n-inf,inf\n7,8\n")
    with pytest.raises(
        InputError,
        match=r"column 'aux' holds 1e\+39 at line 4, .*; first of 3 such values in the file",
    ):
        load_table(path, ["value", "aux"])
    with pytest.raises(InputError, match=r"column 'value' holds -inf at line 5, .*first of 1 such"):
        load_table(path, ["value"])  # only the columns asked for are checked


@pytest.mark.parametrize("time", [True, False], ids=["dated", "undated"])
def test_an_unfilled_nan_names_file_column_row_and_count(tmp_path: Path, time: bool) -> None:
    path = bad_cell_csv(tmp_path / "data.csv", "nan", time)
    where = "line 13, date 2020-01-12" if time else "line 13"
    columns, date = ["value", "aux"], "date" if time else None
    with pytest.raises(InputError) as err:
        load_table(path, columns, time=date)
    assert str(err.value) == (
        f"{path}: 1 missing value {{'aux': 1}} (first at {where}); "
        "set data.fill=ffill|interpolate|drop"
    )
    assert load_table(path, columns, time=date, fill="ffill").values[11, 1] == 21  # line 12's
    assert load_table(path, columns, time=date, fill="interpolate").values[11, 1] == 22


def test_one_bad_cell_stops_training_data_with_the_file_not_window_indices(
    tmp_path: Path,
) -> None:
    path = write_example(tmp_path / "sine.csv", rows=400)
    frame = pd.read_csv(path)
    frame.loc[11, "value"] = 1e300
    frame.to_csv(path, index=False)
    dm = FileDataModule(path=str(path), time="date", n_steps=20)
    with pytest.raises(InputError) as err:
        dm.setup()
    assert str(err.value).startswith(
        f"{path}: column 'value' holds 1e+300 at line 13, date 2020-01-12, infinite or too large"
    )


def test_time_gaps_are_errors_unless_filled(tmp_path: Path) -> None:
    path = tmp_path / "gaps.csv"
    path.write_text("date,value\n2021-01-01,1\n2021-01-02,2\n2021-01-05,5\n2021-01-06,6\n")
    with pytest.raises(InputError, match=r"skips 2 timestamps in 1 gaps \(first: 2021-01-02"):
        load_table(path, ["value"], time="date")
    table = load_table(path, ["value"], time="date", fill="interpolate")
    np.testing.assert_array_equal(table.values[:, 0], [1, 2, 3, 4, 5, 6])
    assert list(table.times) == list(pd.date_range("2021-01-01", periods=6, freq="D"))
    assert len(load_table(path, ["value"], time="date", fill="drop").values) == 4
    path.write_text("date,value\n2021-01-02,1\n2021-01-01,2\n2021-01-03,3\n")
    with pytest.raises(InputError, match=r"does not increase at line 3"):
        load_table(path, ["value"], time="date")


def test_series_too_short_says_how_many_rows(tmp_path: Path) -> None:
    path = write_example(tmp_path / "short.csv", rows=25)
    dm = FileDataModule(path=str(path), n_steps=20, horizon=1)
    with pytest.raises(InputError) as err:
        dm.setup()
    assert str(err.value) == (
        f"{path}: the train split has 18 of 25 rows, fewer than n_steps + horizon = 21 rows "
        "for one training window; with data.split=[0.7, 0.2, 0.1] the file needs at least 30 rows"
    )
    FileDataModule(path=str(write_example(tmp_path / "ok.csv", rows=30)), n_steps=20).setup()
    # Val and test need only the horizon: each row is forecast from the history before it.
    dm = FileDataModule(path=str(path), n_steps=5, horizon=3, split=[20, 3, 2])
    with pytest.raises(InputError) as err:
        dm.setup()
    assert str(err.value) == (
        f"{path}: the test split has 2 of 25 rows, fewer than horizon = 3 rows for one forecast"
    )
    dm = FileDataModule(path=str(path), n_steps=5, horizon=3, split=[19, 3, 3])
    assert [len(dm.arrays(s)[0]) for s in ("train", "val", "test")] == [12, 1, 1]


def test_parquet_without_engine_names_the_package(tmp_path: Path) -> None:
    try:
        import pyarrow  # noqa: F401

        pytest.skip("a Parquet engine is installed")
    except ImportError:
        pass
    path = tmp_path / "x.parquet"
    path.write_bytes(b"PAR1")
    with pytest.raises(InputError, match=r"needs a Parquet engine: install pyarrow"):
        load_table(path, ["value"])


def test_train_cli_bad_column_one_line_exit_2(tmp_path: Path, sine_csv: Path, run_main) -> None:
    result = run_main(
        "train.py",
        "data=csv",
        f"data.path={sine_csv}",
        "data.target=units",
        f"hydra.run.dir={tmp_path / 'run'}",
        cwd=tmp_path,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        f"error: {sine_csv}: no column ['units']; the file has columns ['date', 'value', 'aux']"
    )
    assert not (tmp_path / "run" / "metrics.json").exists()
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_predict_file_with_other_columns_or_irregular_times(
    trained_run: Path, sine_csv: Path, tmp_path: Path, run_main
) -> None:
    other = write_csv(tmp_path / "other.csv", pd.read_csv(sine_csv).rename(columns={"value": "v"}))
    out = tmp_path / "pred"
    result = run_main(
        "predict.py",
        f"ckpt_path={trained_run}",
        f"input={other}",
        f"hydra.run.dir={out}",
        cwd=tmp_path,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        f"error: input {other} has columns ['date', 'v', 'aux'], but this model was trained on "
        "columns ['date', 'value'] (missing ['value'])"
    )
    assert not (out / "predictions.csv").exists()

    frame = pd.read_csv(sine_csv)
    frame.loc[len(frame) - 1, "date"] = "2021-02-03 12:00"  # a half-day step: irregular
    irregular = write_csv(tmp_path / "irregular.csv", frame)
    f = load_forecaster(trained_run, device="cpu")
    with pytest.raises(InputError, match=r"^input .*irregular.csv: time column 'date' is irregul"):
        f.forecast_table(irregular, ahead=3)
    short = write_csv(tmp_path / "short.csv", pd.read_csv(sine_csv).tail(10))
    with pytest.raises(
        InputError, match=r"has 10 usable rows; the model needs the last n_steps = 20"
    ):
        f.forecast_table(short, ahead=3)
    with pytest.raises(InputError, match=r"trained on the file .*; pass input="):
        f.generated_data("test")


def test_multivariate_beyond_horizon_fails_clearly(tmp_path: Path, sine_csv: Path) -> None:
    cfg = file_cfg(
        tmp_path / "run", sine_csv, "model=linear", "data.inputs=[aux]", "trainer.max_epochs=1"
    )
    train(cfg)
    f = load_forecaster(tmp_path / "run" / "checkpoints" / "best.ckpt", device="cpu")
    assert f.n_features == 2
    assert len(f.forecast_table(sine_csv, ahead=1)) == 1
    with pytest.raises(ConfigError, match=r"ahead=2 exceeds the model's horizon 1: .*univariate"):
        f.forecast_table(sine_csv, ahead=2)


@pytest.mark.parametrize("first", ["naive", "aware"])
def test_a_time_column_mixing_naive_and_zoned_times_is_one_line(tmp_path: Path, first) -> None:
    naive, aware = "2021-01-01 00:00:00", "2021-01-01 00:00:00+01:00"
    rows = [naive, "2021-01-02 00:00+01:00", "2021-01-03 00:00"]
    if first == "aware":
        rows = [aware, "2021-01-02 00:00", "2021-01-03 00:00+01:00"]
    path = tmp_path / "zones.csv"
    path.write_text("date,value\n" + "".join(f"{t},{i}\n" for i, t in enumerate(rows)))
    with pytest.raises(InputError) as err:
        load_table(path, ["value"], time="date")
    line = str(err.value)
    assert "\n" not in line and line.startswith(f"{path}: time column 'date' mixes times")
    if first == "naive":
        assert f"(line 2: {naive}) and with one (line 3: 2021-01-02 00:00:00+01:00)" in line
    else:
        assert f"(line 3: 2021-01-02 00:00:00) and with one (line 2: {aware})" in line

"""Prediction intervals: calibration by hand, the checkpoint's widths, predict's bounds, the sweep.

Widths and coverage are recomputed here with numpy from the model's own forecasts (the
checkpoint's module on the regenerated val/test split), never read back from the code under
test: the rank is ``ceil((N + 1) L / 100)``, counted by hand on small cases.
"""

from __future__ import annotations

import json
import math
import re
import statistics
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import CONF, TINY, compose_cfg, scaled_tol
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from seqforecast import intervals, scores
from seqforecast.data.example import write_example
from seqforecast.errors import ConfigError, InputError
from seqforecast.module import ForecastModule
from seqforecast.predict import load_forecaster, load_module, predict
from seqforecast.sweep import write_summary
from seqforecast.train import instantiate, train

# 60 val windows: enough for a finite 95 % interval (19 needed).
SMALL = ["data.n_series=160", "data.split=[80,60,20]", "trainer.max_epochs=1"]


def by_rank(values: np.ndarray, level: float) -> np.ndarray:
    """The ``ceil((N + 1) L / 100)``-th smallest of each column, by a sort per column."""
    n = len(values)
    rank = math.ceil((n + 1) * level / 100)
    if rank > n:
        return np.full(values.shape[1], np.inf)
    return np.array([sorted(values[:, j])[rank - 1] for j in range(values.shape[1])])


def forecasts(module: ForecastModule, x: np.ndarray) -> np.ndarray:
    """The module's direct forecast ``[N, k]`` in float64."""
    module.eval()
    with torch.no_grad():
        return module.forecast(torch.from_numpy(x)).double().numpy()


def inside(y: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> float:
    """Coverage in percent, counted one target at a time."""
    hits = sum(
        int(lo[i, j] <= y[i, j] <= hi[i, j]) for i in range(len(y)) for j in range(y.shape[1])
    )
    return 100.0 * hits / y.size


# --- the calibration, by hand -------------------------------------------------------------------


def test_naive_conformal_widths_and_coverage_by_hand() -> None:
    """The naive model forecasts the last input; its errors are chosen, so is everything else."""
    module = ForecastModule(net="naive", n_steps=3, horizon=2)
    errors = np.array([[3, 9], [1, 8], [4, 7], [1.5, 6], [5, 5], [9, 4], [2, 3], [6, 2], [5.5, 1]])
    x = np.zeros((9, 3, 1), np.float32)  # the forecast is 0: y is the error
    cal = intervals.calibrate(module, x, errors, [50, 80, 95])
    # N = 9: ranks ceil(10 * 0.5) = 5, ceil(10 * 0.8) = 8, ceil(9.5) = 10 > 9 (infinite).
    np.testing.assert_array_equal(cal.widths[0], [4, 5])
    np.testing.assert_array_equal(cal.widths[1], [6, 8])
    assert np.isinf(cal.widths[2]).all() and cal.n_calibration == 9
    # Test windows: last inputs 10 and -10; targets around them.
    x_test = np.array([[0, 0, 10], [0, 0, -10]], np.float32)[..., None]
    y_test = np.array([[14, 16], [-17, -2]])
    point, _ = intervals.forecast(module, x_test)
    bounds = cal.bounds(point)  # [2, 2, 3, 2]
    # 80 %: [10 - 6, 10 + 6] holds 14, [10 - 8, 10 + 8] holds 16; -17 is outside [-16, -4],
    # -2 inside [-18, -2]: 3 of 4.
    np.testing.assert_array_equal(bounds[0, :, 1], [[4, 16], [2, 18]])
    got = intervals.score(y_test, bounds, [50, 80, 95])
    assert got["coverage-80"] == 75.0 and got["coverage-50"] == 25.0
    assert got["width-80"] == pytest.approx((12 + 16 + 12 + 16) / 4)
    # Winkler at 80 %: the width, plus 2 / 0.2 times the miss (-16 - -17 = 1) of the one miss.
    assert got["winkler-80"] == pytest.approx(14 + 10 * 1 / 4)
    assert got["coverage-95"] == 100.0 and got["width-95"] == math.inf


def test_order_statistic_equals_conformal_width_on_absolute_errors() -> None:
    rng = np.random.default_rng(0)
    r = rng.normal(size=(37, 4))
    for level in (50, 80, 90, 95):
        np.testing.assert_array_equal(
            scores.order_statistic(np.abs(r), level), scores.conformal_width(r, level)
        )
        np.testing.assert_array_equal(scores.order_statistic(r, level), by_rank(r, level))


@pytest.mark.parametrize("method", ["conformal", "cqr"])
@pytest.mark.parametrize(("n", "batch"), [(5, 2), (40, 7), (1500, 97), (1500, 2000)])
def test_streamed_calibration_equals_the_sort_of_every_score(method: str, n: int, batch: int):
    """Batch by batch, keeping only each step's largest scores, gives the widths of a sort of
    all of them: several trims of the buffer (1500 windows, batches of 97), ties (values on a
    coarse grid), too few windows for 95 % (5: infinite), signed cqr scores."""
    rng = np.random.default_rng(n + batch)
    k, levels = 3, [80, 90, 95]  # 1500 windows: each step's 300 largest kept
    point = rng.normal(size=(n, k)).round(1)  # [n, k], many ties
    y = rng.normal(size=(n, k)).astype(np.float32)
    spread = rng.uniform(0.0, 2.0, size=(n, k, len(levels), 2))
    model = point[..., None, None] + spread * np.array([-1.0, 1.0])  # [n, k, L, 2]
    parts = [(point[i : i + batch], model[i : i + batch], y[i : i + batch])
             for i in range(0, n, batch)]  # fmt: skip
    got = intervals.calibrate_batches(parts, n, levels, method)
    y64 = y.astype(np.float64)
    for i, level in enumerate(levels):
        if method == "conformal":
            values = np.abs(y64 - point)
        else:
            values = np.maximum(model[..., i, 0] - y64, y64 - model[..., i, 1])
        np.testing.assert_array_equal(got.widths[i], by_rank(values, level))
    assert got.n_calibration == n and got.levels == levels
    with pytest.raises(ValueError, match=f"expected {n + 1} calibration windows, got {n}"):
        intervals.calibrate_batches(parts, n + 1, levels, method)


def test_cqr_and_model_intervals_by_hand() -> None:
    """A quantile model's bounds read from forecast_quantiles, CQR's shift by the rank."""
    torch.manual_seed(0)
    module = ForecastModule(net="linear", n_steps=4, horizon=2, loss="quantile")
    rng = np.random.default_rng(1)
    x = rng.normal(size=(30, 4, 1)).astype(np.float32)
    y = rng.normal(size=(30, 2))
    with torch.no_grad():
        q = module.forecast_quantiles(torch.from_numpy(x), [0.1, 0.9]).double().numpy()
    lo, hi = q[..., 0], q[..., 1]
    cal = intervals.calibrate(module, x, y, [80], "cqr")
    shift = by_rank(np.maximum(lo - y, y - hi), 80)  # N = 30: the 25th smallest
    tol = scaled_tol(q, 1e-6)  # float32 rounding of the quantiles' magnitude
    np.testing.assert_allclose(cal.widths[0], shift, **tol)
    point, model = intervals.forecast(module, x, [80], "cqr")
    bounds = cal.bounds(point, model)
    np.testing.assert_allclose(bounds[..., 0, 0], lo - shift, **tol)
    np.testing.assert_allclose(bounds[..., 0, 1], hi + shift, **tol)
    # On its own calibration windows CQR covers at least the level (ties aside).
    assert inside(y, bounds[..., 0, 0], bounds[..., 0, 1]) >= 80
    own = intervals.calibrate(module, x, y, [80], "model")
    np.testing.assert_array_equal(own.widths, 0)
    np.testing.assert_allclose(own.bounds(point, model)[..., 0, :], q, **tol)


def test_gaussian_model_interval_is_the_normal_quantile() -> None:
    torch.manual_seed(0)
    module = ForecastModule(net="linear", n_steps=4, horizon=3, loss="gaussian")
    x = np.random.default_rng(2).normal(size=(5, 4, 1)).astype(np.float32)
    with torch.no_grad():
        dist = module.forward_dist(torch.from_numpy(x)).double().numpy()  # [5, 3, 2]
    mean, scale = dist[..., 0], dist[..., 1]
    z = statistics.NormalDist().inv_cdf(0.975)
    _, model = intervals.forecast(module, x, [95], "model")
    tol = scaled_tol(dist, 1e-5)  # float32 rounding of the outputs' magnitude
    np.testing.assert_allclose(model[..., 0, 0], mean - z * scale, **tol)
    np.testing.assert_allclose(model[..., 0, 1], mean + z * scale, **tol)


def test_methods_that_do_not_fit_the_model_are_one_line() -> None:
    mse = ForecastModule(net="linear", n_steps=4, horizon=2)
    with pytest.raises(ConfigError, match=r"^intervals=cqr reads the model's own quantiles.*mse"):
        intervals.check_method(mse, "cqr", [80])
    quantile = ForecastModule(net="linear", n_steps=4, horizon=2, loss="quantile")
    with pytest.raises(ConfigError, match=r"^levels=\[80, 95\]: .* levels=\[80\.0\] \(\[95\]"):
        intervals.check_method(quantile, "model", [80, 95])
    intervals.check_method(quantile, "conformal", [95])  # conformal: any model, any level


def test_malformed_stored_calibration_is_one_line() -> None:
    bad = [
        {"method": "conformal", "levels": [80], "n_calibration": 9},  # no widths
        {"method": "conformal", "levels": [80], "widths": [[1.0, 2.0]], "n_calibration": 9},
        {"method": "split", "levels": [80], "widths": [[1.0, 2.0, 3.0]], "n_calibration": 9},
        [80, 95],
    ]
    for state in bad:
        with pytest.raises(InputError, match=r"^checkpoint x.ckpt: its 'intervals' entry is mal"):
            intervals.Calibration.from_dict(state, "checkpoint x.ckpt", steps=3)


# --- train: widths in the checkpoint and metrics.json -------------------------------------------


@pytest.fixture(scope="module")
def seq2seq_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("seq2seq")
    train(compose_cfg(run, "model=seq2seq", *SMALL))
    return run


def test_checkpoint_widths_are_conformal_widths_of_the_val_residuals(seq2seq_run: Path) -> None:
    ckpt_path = seq2seq_run / "checkpoints" / "best.ckpt"
    ckpt = torch.load(ckpt_path, weights_only=True)  # still plain values and tensors
    stored = ckpt["intervals"]
    assert stored["method"] == "conformal" and stored["levels"] == [80.0, 95.0]
    # Lightning still loads it, and the one safe loader too.
    ForecastModule.load_from_checkpoint(ckpt_path, map_location="cpu")
    module = load_module(ckpt_path, layers="plain")
    dm = instantiate(compose_cfg(seq2seq_run, "model=seq2seq", *SMALL).data)
    x, y = dm.arrays("val")  # the regenerated val split
    residuals = np.abs(y[:, -1] - forecasts(module, x))  # [60, 10]
    assert stored["n_calibration"] == 60
    for level, widths in zip(stored["levels"], stored["widths"], strict=True):
        np.testing.assert_allclose(widths, scores.conformal_width(residuals, level), rtol=1e-5)
    # The test scores: the test windows' last step against point -/+ those widths.
    metrics = json.loads((seq2seq_run / "metrics.json").read_text())
    x, y = dm.arrays("test")
    point, target = forecasts(module, x), y[:, -1]
    for level, widths in zip(stored["levels"], stored["widths"], strict=True):
        w = np.asarray(widths)
        name = f"{level:g}"
        assert metrics[f"test/coverage-{name}"] == pytest.approx(
            inside(target, point - w, point + w), abs=1e-9
        )
        assert metrics[f"test/width-{name}"] == pytest.approx(2 * w.mean(), rel=1e-6)
    assert metrics["intervals"] == stored


def test_levels_null_or_empty_write_no_intervals(make_cfg, tmp_path: Path) -> None:
    metrics = train(make_cfg("model=naive", "levels=[]"))
    assert not any("coverage" in k for k in metrics) and "intervals" not in metrics
    ckpt = torch.load(tmp_path / "checkpoints" / "best.ckpt", weights_only=True)
    assert "intervals" not in ckpt


def test_naive_baseline_gets_intervals(make_cfg, tmp_path: Path) -> None:
    metrics = train(make_cfg("model=naive", "levels=[50,80]"))
    assert metrics["intervals"]["n_calibration"] == 16 and "test/winkler-50" in metrics
    f = load_forecaster(tmp_path / "checkpoints" / "best.ckpt", "cpu")
    assert f.levels == [50.0, 80.0]


def test_cqr_train_stores_the_rank_of_the_val_scores(make_cfg, tmp_path: Path) -> None:
    overrides = ("model=seq2seq", "model.loss=quantile", "intervals=cqr", "levels=[80]", *SMALL)
    metrics = train(make_cfg(*overrides))
    module = load_module(tmp_path / "checkpoints" / "best.ckpt", layers="plain")
    x, y = instantiate(make_cfg(*overrides).data).arrays("val")
    with torch.no_grad():
        q = module.forecast_quantiles(torch.from_numpy(x), [0.1, 0.9]).double().numpy()
    y = y[:, -1]
    shift = by_rank(np.maximum(q[..., 0] - y, y - q[..., 1]), 80)
    np.testing.assert_allclose(metrics["intervals"]["widths"][0], shift, rtol=1e-4, atol=1e-6)
    # The model's own coverage is kept apart from that of the intervals in use.
    module_own = scores.coverage(y, q[..., 0], q[..., 1])  # val: the model's own quantiles
    assert metrics["val/coverage-80"] == pytest.approx(module_own, abs=1e-4)
    assert "test/model_coverage-80" in metrics
    x, y = instantiate(make_cfg(*overrides).data).arrays("test")
    with torch.no_grad():
        q = module.forecast_quantiles(torch.from_numpy(x), [0.1, 0.9]).double().numpy()
    want = inside(y[:, -1], q[..., 0] - shift, q[..., 1] + shift)
    assert metrics["test/coverage-80"] == pytest.approx(want)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["levels=[0,80]"], r"^error: levels=\[0, 80\] is not allowed: expected null or a list"),
        (["levels=[100]"], r"^error: levels=\[100\] is not allowed"),
        (["levels='80'"], r"^error: levels='80' is not allowed"),
        (["intervals=bootstrap"], r"^error: intervals='bootstrap' is not allowed: expected one of"),
        (["intervals=model"], r"^error: intervals=model reads the model's own quantiles"),
        (
            ["model=seq2seq", "model.loss=quantile", "intervals=model"],
            r"^error: levels=\[80, 95\]: intervals=model on a quantile model",
        ),
    ],
)
def test_bad_levels_stop_train_in_one_line(
    tmp_path: Path, run_main, overrides: list[str], message: str
) -> None:
    args = ["model=naive", *TINY, f"hydra.run.dir={tmp_path / 'run'}", *overrides]
    result = run_main("train.py", *args, cwd=tmp_path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert re.match(message, lines[-1]), lines[-3:]


# --- predict ------------------------------------------------------------------------------------


def predict_cfg(ckpt: Path, out: Path, *overrides: str) -> DictConfig:
    """The real ``conf/predict.yaml`` for ``ckpt``, writing into ``out``."""
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(
            "predict",
            overrides=[f"ckpt_path={ckpt}", f"output_dir={out}", "progress=false", *overrides],
        )


def test_predict_writes_point_plus_minus_the_stored_widths(seq2seq_run: Path, tmp_path) -> None:
    ckpt = seq2seq_run / "checkpoints" / "best.ckpt"
    summary = predict(predict_cfg(ckpt, tmp_path, "ahead=7"))
    stored = torch.load(ckpt, weights_only=True)["intervals"]
    point = np.load(tmp_path / "predictions.npy")  # [20, 7]: unchanged shape
    bounds = np.load(tmp_path / "intervals.npy")  # [20, 7, 2, 2]
    assert point.shape == (20, 7) and bounds.shape == (20, 7, 2, 2)
    for i, widths in enumerate(stored["widths"]):
        w = np.asarray(widths[:7], np.float32)
        tol = scaled_tol(point, 1e-6)  # float32 sums: rounding of the forecasts' magnitude
        np.testing.assert_allclose(bounds[:, :, i, 0], point - w, **tol)
        np.testing.assert_allclose(bounds[:, :, i, 1], point + w, **tol)
    table = pd.read_csv(tmp_path / "intervals.csv")
    assert list(table.columns) == ["series", "step", "forecast", "lo-80", "hi-80", "lo-95", "hi-95"]
    want = bounds[:, :, 1, 1].reshape(-1)
    np.testing.assert_allclose(table["hi-95"], want, **scaled_tol(want, 1e-6))
    # Scored against the regenerated test targets.
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics == summary | {"data": metrics["data"]}
    actual = load_forecaster(ckpt, "cpu").generated_data("test")[1][:, -1, :7]
    expected = inside(actual, bounds[:, :, 0, 0], bounds[:, :, 0, 1])
    assert metrics["coverage-80"] == pytest.approx(expected)
    assert (tmp_path / "forecast.png").stat().st_size > 0


def test_predict_calibrates_other_levels_on_the_rebuilt_val_split(seq2seq_run: Path) -> None:
    ckpt = seq2seq_run / "checkpoints" / "best.ckpt"
    f = load_forecaster(ckpt, "cpu", layers="plain")
    x, y, _ = f.generated_data("val")
    residuals = np.abs(y[:, -1] - forecasts(f.module, x))
    point, bounds = f.predict_intervals(x[:5], levels=[50])
    w = scores.conformal_width(residuals, 50).astype(np.float32)
    np.testing.assert_allclose(bounds[:, :, 0, 1] - point, np.broadcast_to(w, (5, 10)), atol=1e-6)


def test_old_checkpoint_is_calibrated_at_predict_time(tmp_path: Path) -> None:
    old = Path(__file__).parent / "data" / "v0" / "seq2seq.ckpt"
    predict(predict_cfg(old, tmp_path, "levels=[80]", "plot=0"))
    summary = json.loads((tmp_path / "metrics.json").read_text())
    f = load_forecaster(old, "cpu")
    x, y, _ = f.generated_data("val")
    widths = scores.conformal_width(y[:, -1] - forecasts(f.module, x), 80)
    np.testing.assert_allclose(summary["intervals"]["widths"][0], widths, rtol=1e-5)
    assert summary["intervals"]["n_calibration"] == 16


def test_gaussian_model_intervals_at_predict_time(make_cfg, tmp_path: Path) -> None:
    train(make_cfg("model=seq2vec", "model.loss=gaussian", "trainer.max_epochs=1"))
    f = load_forecaster(tmp_path / "checkpoints" / "best.ckpt", "cpu")
    x = f.generated_data("test")[0]
    point, bounds = f.predict_intervals(x, levels=[90], method="model")
    with torch.no_grad():
        dist = f.module.forward_dist(torch.from_numpy(x)).double().numpy()  # [16, 10, 2]
    z = statistics.NormalDist().inv_cdf(0.95)
    np.testing.assert_allclose(point, dist[..., 0], **scaled_tol(dist, 1e-5))
    np.testing.assert_allclose(bounds[..., 0, 0], dist[..., 0] - z * dist[..., 1], atol=1e-5)
    np.testing.assert_allclose(bounds[..., 0, 1], dist[..., 0] + z * dist[..., 1], atol=1e-5)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["levels=[100]"], r"^error: levels=\[100\] is not allowed"),
        (["levels='80'"], r"^error: levels='80' is not allowed"),
        (["intervals=bootstrap"], r"^error: intervals='bootstrap' is not allowed"),
        (
            ["ahead=12"],
            r"^error: levels=\[80, 95\]: intervals are calibrated for the model's",
        ),
        (["intervals=cqr"], r"^error: intervals=cqr reads the model's own quantiles"),
    ],
)
def test_bad_levels_stop_predict_in_one_line(
    seq2seq_run: Path, tmp_path: Path, run_main, overrides: list[str], message: str
) -> None:
    ckpt = seq2seq_run / "checkpoints" / "best.ckpt"
    # Iterative forecasts with the checkpoint's default levels: no intervals, no error.
    if overrides == ["ahead=12"]:
        ok = run_main("predict.py", f"ckpt_path={ckpt}", "ahead=12", "plot=0", cwd=tmp_path)
        assert ok.returncode == 0 and "intervals" not in ok.stdout
        overrides = ["ahead=12", "levels=[80,95]"]
    result = run_main("predict.py", f"ckpt_path={ckpt}", "plot=0", *overrides, cwd=tmp_path)
    assert result.returncode == 2
    assert re.match(message, result.stderr.strip().splitlines()[-1]), result.stderr


def test_file_data_bounds_are_in_the_data_units(tmp_path: Path) -> None:
    csv = write_example(tmp_path / "sine.csv", rows=400)
    run = tmp_path / "run"
    overrides = ["data=csv", f"data.path={csv}", "data.time=date", "n_steps=20", "model=seq2seq"]
    train(
        compose_cfg(
            run, *overrides, "trainer.max_epochs=1", "trainer.log_every_n_steps=1", tiny=False
        )
    )
    ckpt = run / "checkpoints" / "best.ckpt"
    stored = torch.load(ckpt, weights_only=True)
    scale = stored["FileDataModule"]["scaler"]["scale"][0]
    out = tmp_path / "pred"
    predict(predict_cfg(ckpt, out, f"input={csv}", "ahead=6"))
    table = pd.read_csv(out / "predictions.csv")
    assert list(table.columns) == ["step", "date", "value", "lo-80", "hi-80", "lo-95", "hi-95"]
    for level, widths in zip(["80", "95"], stored["intervals"]["widths"], strict=True):
        in_units = np.asarray(widths[:6]) * scale  # scaled widths times the target's scale
        # A difference of two forecasts rounds at the forecasts' magnitude, not the width's.
        tol = scaled_tol(table["value"], 1e-4)
        np.testing.assert_allclose(table[f"hi-{level}"] - table["value"], in_units, **tol)
        np.testing.assert_allclose(table["value"] - table[f"lo-{level}"], in_units, **tol)
    hi, saved = table["hi-80"], np.load(out / "intervals.npy")[0, :, 0, 1]
    np.testing.assert_allclose(saved, hi, **scaled_tol(hi, 1e-6))
    # A file-trained checkpoint is calibrated only when it trains.
    with pytest.raises(InputError, match=r"^levels=\[90\] intervals=conformal: .* \[80.0, 95.0\]"):
        predict(predict_cfg(ckpt, tmp_path / "p2", f"input={csv}", "levels=[90]"))


# --- a shift between the val and test spans -----------------------------------------------------


def test_coverage_shift_is_a_one_sided_binomial_test_on_non_overlapping_windows() -> None:
    # 100 windows of 5 steps: 20 non-overlapping. P(Bin(20, 0.8) <= 11) = 0.00998 (below 1 %),
    # P(Bin(20, 0.8) <= 12) = 0.0321 (above), both summed by hand with math.comb.
    by_hand = [
        sum(math.comb(20, i) * 0.8**i * 0.2 ** (20 - i) for i in range(x + 1)) for x in (11, 12)
    ]
    assert intervals.binomial_cdf(11, 20, 0.8) == pytest.approx(by_hand[0], rel=1e-9)
    assert intervals.binomial_cdf(12, 20, 0.8) == pytest.approx(by_hand[1], rel=1e-9)
    assert by_hand[0] < 0.01 < by_hand[1]
    assert intervals.coverage_shift(55.0, 80, windows=100, steps=5)  # 11 of 20 covered
    assert not intervals.coverage_shift(60.0, 80, windows=100, steps=5)  # 12 of 20
    # The same 60 % on 100 one-step windows (100 draws) is far out of chance.
    assert intervals.coverage_shift(60.0, 80, windows=100, steps=1)
    assert not intervals.coverage_shift(100.0, 95, windows=3, steps=1)  # inf widths cover all


def _noise_csv(path: Path, late_scale: float) -> Path:
    """300 rows of seeded noise around 50, ``late_scale`` times wider in the last 40 rows (the
    test span of a [0.7, 0.15, 0.15] split is the last 45)."""
    noise = np.random.default_rng(3).normal(0.0, 1.0, 300)
    noise[260:] *= late_scale
    pd.DataFrame({"t": np.arange(300), "value": 50 + noise}).to_csv(path, index=False)
    return path


@pytest.mark.parametrize("late_scale", [1.0, 20.0])
def test_a_test_span_unlike_the_val_span_is_flagged_and_warned(
    tmp_path: Path, late_scale: float, caplog
) -> None:
    csv = _noise_csv(tmp_path / "noise.csv", late_scale)
    data = ["data=csv", f"data.path={csv}", "data.time=t", "data.split=[0.7,0.15,0.15]"]
    cfg = compose_cfg(tmp_path / "run", "model=naive", "n_steps=10", *data, tiny=False)
    metrics = train(cfg)
    # Recount the coverage of the naive forecast +- its val-calibrated width by hand.
    y = pd.read_csv(csv)["value"].to_numpy()
    n_train, n_val = 210, 45
    val_err = np.abs(y[n_train : n_train + n_val] - y[n_train - 1 : n_train + n_val - 1])
    width = by_rank(val_err[:, None], 80)[0]
    test = np.arange(n_train + n_val, 300)
    covered = np.abs(y[test] - y[test - 1]) <= width
    assert metrics["test/windows"] == len(test) == 45
    assert metrics["test/coverage-80"] == pytest.approx(100 * covered.mean(), abs=1e-9)
    flagged = late_scale > 1
    assert metrics["test/coverage_shift-80"] == int(flagged)
    lines = intervals.shift_warnings(metrics)
    if flagged:
        assert metrics["test/coverage-80"] < 40
        assert lines[0].startswith(
            f"the 80 % intervals covered {metrics['test/coverage-80']:.1f} %"
        )
        assert "(45 test windows)" in lines[0] and intervals.SHIFT_DOC in lines[0]
        assert lines[0] in caplog.text
    else:
        assert metrics["test/coverage-80"] > 70 and not lines
        assert "intervals covered" not in caplog.text
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())[
        "test/coverage_shift-80"
    ] == int(flagged)


# --- the sweep table ----------------------------------------------------------------------------


def test_sweep_summary_shows_the_interval_columns(tmp_path: Path) -> None:
    for job, cov in (("0", 81.5), ("1", 79.0)):
        folder = tmp_path / job
        folder.mkdir()
        (folder / "status").write_text("finished\n")
        metrics = {"val/mse_last": float(job), "test/mse_last": 0.1}
        for level, c in ((95, cov + 15), (80, cov)):
            metrics |= {f"test/coverage-{level}": c, f"test/width-{level}": 0.2}
            metrics |= {f"test/winkler-{level}": 0.3}
        (folder / "metrics.json").write_text(json.dumps(metrics))
    md, csv_path, _ = write_summary(tmp_path)
    header = pd.read_csv(csv_path).columns.tolist()
    at = header.index("test/mse_last")
    assert header[at + 1 : at + 7] == [
        "test/coverage-80",
        "test/width-80",
        "test/winkler-80",
        "test/coverage-95",
        "test/width-95",
        "test/winkler-95",
    ]
    assert "| 81.5 |" in md.read_text() and "| 94 |" in md.read_text()

"""The automatic forecast (scripts/forecast.py): its outputs, its rule, its refusals."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import CONF, scaled_tol
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from seqforecast.auto_forecast.task import forecast
from seqforecast.errors import ConfigError, InputError

STATS = "pool=[seasonal_naive,auto_ets]"


def write_monthly(path: Path, rows: int = 60, ids: tuple[str, ...] = ()) -> Path:
    """Seasonal monthly series (season 12, trend, seeded noise); a panel with ``ids``."""
    rng = np.random.default_rng(0)
    frames = []
    for k, key in enumerate(ids or ("",)):
        t = np.arange(rows)
        y = 50 + 10 * k + 5 * np.sin(2 * np.pi * t / 12) + 0.2 * t + rng.normal(0, 0.5, rows)
        dates = pd.date_range("2001-01-01", periods=rows, freq="MS").strftime("%Y-%m-%d")
        frame = pd.DataFrame({"date": dates, "value": y.round(4)})
        frames.append(frame.assign(store=key) if ids else frame)
    pd.concat(frames).to_csv(path, index=False)
    return path


def make(tmp_path: Path, *overrides: str) -> DictConfig:
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose("forecast", [f"output_dir={tmp_path / 'out'}", "plot=false", *overrides])


def seasonal_naive_mase(y: np.ndarray, horizon: int, n_val: int, season: int) -> float:
    """Independent: seasonal naive at the validation origins over the in-sample scale."""
    span = horizon + n_val - 1
    train = y[: len(y) - span]
    errors = [
        abs(y[c + j] - y[c + j - season * ((j - 1) // season + 1)])
        for c in range(len(y) - span - 1, len(y) - horizon)
        for j in range(1, horizon + 1)
    ]
    return float(np.mean(errors) / np.mean(np.abs(train[season:] - train[:-season])))


def test_stats_pool_writes_the_choice_and_the_forecast(tmp_path: Path) -> None:
    csv = write_monthly(tmp_path / "m.csv")
    summary = forecast(make(tmp_path, f"input={csv}", STATS, "horizon=6", "top_k=2"))
    out = tmp_path / "out"
    y = pd.read_csv(csv)["value"].to_numpy()
    assert summary["season"] == 12 and summary["horizon"] == 6
    val = pd.read_csv(out / "validation.csv").set_index("metric")
    expected = seasonal_naive_mase(y, 6, 6, 12)
    assert val.loc["mase", "seasonal_naive"] == pytest.approx(expected, rel=1e-9)
    assert 0 <= val.loc["coverage_level80", "auto_ets"] <= 1
    choice = json.loads((out / "choice.json").read_text())
    assert choice["members"] == sorted(["seasonal_naive", "auto_ets"], key=choice["val_mase"].get)
    f = pd.read_csv(out / "forecast.csv")
    assert list(f.columns) == ["unique_id", "ds", "auto", "auto-lo-80", "auto-hi-80",
                               "seasonal_naive", "auto_ets"]  # fmt: skip
    assert list(f["ds"]) == list(
        pd.date_range("2006-01-01", periods=6, freq="MS").strftime("%Y-%m-%d")
    )
    # median of two members: their mean; seasonal naive: the last season's values
    members = f[["seasonal_naive", "auto_ets"]].to_numpy()
    np.testing.assert_allclose(f["auto"], members.mean(axis=1), **scaled_tol(members, 1e-12))
    np.testing.assert_allclose(f["seasonal_naive"], y[-12:-6], **scaled_tol(y, 1e-12))
    width = f["auto-hi-80"] - f["auto"]
    np.testing.assert_allclose(f["auto"] - f["auto-lo-80"], width, **scaled_tol(y, 1e-9))
    # 80 % of 6 validation origins: the largest |error| per step (ceil(7 x 0.8) = 6th), x 1.2
    val_fc = pd.read_csv(out / "validation_forecasts.csv")
    np.testing.assert_allclose(
        val_fc["auto"], val_fc[["seasonal_naive", "auto_ets"]].mean(axis=1), **scaled_tol(y, 1e-12)
    )
    errors = np.abs(val_fc["y"] - val_fc["auto"]).to_numpy().reshape(6, 6)  # [origins, steps]
    np.testing.assert_allclose(width, 1.2 * errors.max(axis=0), **scaled_tol(y, 1e-9))
    assert choice["interval_scale"] == 1.2
    assert not (out / "test.csv").exists()


def test_test_span_scores_each_candidate_and_the_combination(tmp_path: Path) -> None:
    csv = write_monthly(tmp_path / "m.csv", rows=66)
    cfg = make(tmp_path, f"input={csv}", "pool=[seasonal_naive]", "horizon=4", "n_val=3", "test=5")
    summary = forecast(cfg)
    out = tmp_path / "out"
    test = pd.read_csv(out / "test.csv")
    assert len(test) == 2 * 4  # 5 - 4 + 1 origins x 4 steps
    y = pd.read_csv(csv)["value"].to_numpy()
    # the combination of one member is that member; intervals from its 3 validation errors
    np.testing.assert_allclose(test["auto"], test["seasonal_naive"], **scaled_tol(y, 1e-12))
    hist = y[:-5]
    cut = np.arange(len(hist) - 4 - 3, len(hist) - 4)  # 3 validation cutoffs
    steps = np.arange(1, 5)
    err = np.abs(hist[cut[:, None] + steps] - hist[cut[:, None] + steps - 12])  # [3, 4]
    # 80 %: the ceil(4 * 0.8) = 4th smallest of 3 errors: none, an infinite width
    assert np.isinf(test["auto-hi-80"]).all() or np.allclose(
        test["auto-hi-80"] - test["auto"], np.tile(err.max(0), 2)
    )
    scale = np.mean(np.abs(hist[12:] - hist[:-12]))
    expected = np.mean(np.abs(test["y"] - test["seasonal_naive"])) / scale
    assert summary["test_mase"]["auto"] == pytest.approx(expected, rel=1e-4)


def test_panel_validates_per_series(tmp_path: Path) -> None:
    csv = write_monthly(tmp_path / "p.csv", ids=("a", "b"))
    cfg = make(tmp_path, f"input={csv}", "data.id=store", "pool=[seasonal_naive]", "horizon=3")
    forecast(cfg)
    val = pd.read_csv(tmp_path / "out" / "validation.csv")
    mase = val[val["metric"] == "mase"].set_index("unique_id")["seasonal_naive"]
    table = pd.read_csv(csv)
    for key in ("a", "b"):
        y = table.loc[table["store"] == key, "value"].to_numpy()
        assert mase[key] == pytest.approx(seasonal_naive_mase(y, 3, 6, 12), rel=1e-9)
    f = pd.read_csv(tmp_path / "out" / "forecast.csv")
    assert list(f["unique_id"]) == ["a"] * 3 + ["b"] * 3


def test_median_rule_takes_the_middle_member(tmp_path: Path) -> None:
    csv = write_monthly(tmp_path / "m.csv")
    pool = "pool=[seasonal_naive,auto_ets,auto_theta]"
    summary = forecast(make(tmp_path, f"input={csv}", pool, "horizon=6", "combine=median"))
    f = pd.read_csv(tmp_path / "out" / "forecast.csv")
    members = f[["seasonal_naive", "auto_ets", "auto_theta"]].to_numpy()  # [h, 3]
    middle = np.sort(members, axis=1)[:, 1]
    np.testing.assert_allclose(f["auto"], middle, **scaled_tol(members, 1e-12))
    assert summary["rule"] == "median of the best 3 candidates by validation MASE"


def test_arima_order_searched_once_then_refitted(tmp_path: Path) -> None:
    """AutoARIMA's order from the rows up to the first validation origin, re-estimated at
    each origin: statsforecast's own models on the same rows, independently."""
    from statsforecast.models import ARIMA, AutoARIMA

    csv = write_monthly(tmp_path / "p.csv", rows=48, ids=("b", "a"))
    forecast(make(tmp_path, f"input={csv}", "data.id=store", "pool=[auto_arima]", "horizon=4"))
    val = pd.read_csv(tmp_path / "out" / "validation_forecasts.csv")
    table = pd.read_csv(csv)
    for key in ("a", "b"):
        y = table.loc[table["store"] == key, "value"].to_numpy()
        got = val.loc[val["unique_id"] == key, "auto_arima"].to_numpy().reshape(6, 4)
        first, last = len(y) - 4 - 6, len(y) - 4 - 1  # cutoff rows
        search = AutoARIMA(season_length=12).fit(y[: first + 1])
        np.testing.assert_allclose(
            got[0], search.predict(4)["mean"], **scaled_tol(y, 1e-6)
        )  # the same order on the same rows: the search's own forecast
        p, q, sp, sq, m, d, sd = search.model_["arma"]
        coef = search.model_["coef"]
        refit = ARIMA(
            order=(p, d, q),
            season_length=m,
            seasonal_order=(sp, sd, sq),
            include_mean="intercept" in coef,
            include_drift="drift" in coef,
        ).fit(y[: last + 1])
        np.testing.assert_allclose(got[-1], refit.predict(4)["mean"], **scaled_tol(y, 1e-6))


@pytest.mark.parametrize(
    ("overrides", "error", "match"),
    [
        (["input=missing.csv"], InputError, r"input=.*missing.csv: no such file"),
        (["data.target=sales"], InputError, r"data.target='sales' is not a column"),
        (["pool=[seasonal_naive,prophet]"], ConfigError, r"\['prophet'\] unknown"),
        (["horizon=0"], ConfigError, "horizon=0 is not allowed"),
        (["horizon=32"], InputError, r"has 60 rows, too few: .* need 61;"),
        (["horizon=6", "test=3"], ConfigError, "test=3: expected 0 or at least horizon=6"),
        (["combine=vote"], ConfigError, r"combine='vote' is unknown; expected one of \['mean'"),
        (["interval_scale=0"], ConfigError, "interval_scale=0 is not allowed: expected a number"),
    ],
)
def test_refusals_are_one_line(tmp_path: Path, overrides, error, match) -> None:
    csv = write_monthly(tmp_path / "m.csv")
    given = [o if not o.startswith("input=") else f"input={tmp_path / o[6:]}" for o in overrides]
    if not any(o.startswith("input=") for o in given):
        given.append(f"input={csv}")
    with pytest.raises(error, match=match) as caught:
        forecast(make(tmp_path, STATS, *given))
    assert "\n" not in str(caught.value)
    assert not (tmp_path / "out").exists()


def test_network_candidate_trains_and_forecasts(tmp_path: Path) -> None:
    csv = write_monthly(tmp_path / "m.csv")
    cfg = make(
        tmp_path, f"input={csv}", "pool=[linear_seasonal]", "horizon=6", "seeds=1", "epochs=2"
    )
    summary = forecast(cfg)
    assert summary["skipped"] == {}
    f = pd.read_csv(tmp_path / "out" / "forecast.csv")
    assert np.isfinite(f["linear_seasonal"]).all() and len(f) == 6
    assert set(summary["members"]) == {"seasonal_naive", "linear_seasonal"}


def test_script_refusal_is_one_line_and_leaves_no_folder(tmp_path: Path, run_main) -> None:
    result = run_main("forecast.py", "input=nowhere.csv", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == ["error: input=nowhere.csv: no such file"]
    result = run_main("forecast.py", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: input is required: input=<a .csv or .parquet table>"
    ]
    assert not (tmp_path / "outputs").exists()


def test_script_trains_networks_inside_its_hydra_app(tmp_path: Path, run_main) -> None:
    csv = write_monthly(tmp_path / "m.csv")
    args = ["pool=[linear_seasonal]", "horizon=6", "seeds=1", "epochs=1", "hydra.run.dir=out"]
    result = run_main("forecast.py", f"input={csv}", *args, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "chosen: mean of the best 3" in result.stdout
    f = pd.read_csv(tmp_path / "out" / "forecast.csv")
    assert len(f) == 6 and np.isfinite(f["auto"]).all()
    assert (tmp_path / "out" / "forecast.png").stat().st_size > 0


@pytest.mark.slow
def test_panel_network_trains_one_global_model(tmp_path: Path) -> None:
    csv = write_monthly(tmp_path / "p.csv", rows=48, ids=("a", "b"))
    cfg = make(
        tmp_path,
        f"input={csv}",
        "data.id=store",
        "pool=[linear_seasonal]",
        "horizon=3",
        "seeds=1",
        "epochs=1",
    )
    summary = forecast(cfg)
    assert summary["skipped"] == {}
    f = pd.read_csv(tmp_path / "out" / "forecast.csv")
    assert list(f["unique_id"]) == ["a"] * 3 + ["b"] * 3
    assert np.isfinite(f["linear_seasonal"]).all()
    # one training per fit for the whole panel: validation and final
    assert len(list((tmp_path / "out" / "runs" / "linear_seasonal" / "seed0").iterdir())) == 2


def test_panel_networks_refuse_series_ending_apart(tmp_path: Path) -> None:
    csv = write_monthly(tmp_path / "p.csv", ids=("a", "b"))
    table = pd.read_csv(csv)
    table.drop(table.index[-1]).to_csv(csv, index=False)  # b ends a month early
    cfg = make(tmp_path, f"input={csv}", "data.id=store", "pool=[linear_seasonal]", "horizon=3")
    with pytest.raises(InputError, match="series ending together"):
        forecast(cfg)


def test_benchmark_reports_auto_against_its_targets() -> None:
    """bench_accuracy's target lines: best statistical model by mean over the single series,
    each panel's best, the ratio to seasonal naive and the rows worse by > 5 %."""
    import runpy

    from conftest import ROOT

    bench = runpy.run_path(str(ROOT / "benchmarks" / "bench_accuracy.py"))
    series = bench["Series"]
    catalog = [
        series("a", Path("a.csv"), "t", "v", 12, 6),
        series("b", Path("b.csv"), "t", "v", 12, 6),
        series("p", Path("p.csv"), "t", "v", 4, 8, "id"),
    ]
    main = pd.DataFrame(
        {
            "auto": [1.0, 2.1, 0.5],
            "AutoETS": [1.2, 1.9, 0.7],  # singles' mean 1.55
            "AutoTheta": [1.0, 2.2, 0.4],  # 1.6; the panel's best
            "SeasonalNaive": [1.1, 2.0, 0.6],
        },
        index=["a", "b", "p (mean of 3)"],
    )
    lines = bench["target_lines"](main, catalog, list(main))
    assert lines[0] == (
        "single series (2): auto 1.550, best statistical model AutoETS 1.550: ratio 1.000 "
        "(target <= 0.95)"
    )
    assert lines[1] == (
        "panel p (mean of 3): auto 0.500, best statistical model AutoTheta 0.400 (target: below)"
    )
    assert lines[2] == "auto / SeasonalNaive per row: a 0.909, b 1.050, p 0.833"
    assert lines[3] == "rows where auto is worse than SeasonalNaive by > 5 %: none"
    main.loc["b", "auto"] = 2.2  # 1.1 x seasonal naive
    assert bench["target_lines"](main, catalog, list(main))[3].endswith(": ['b']")

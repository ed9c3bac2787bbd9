"""The accuracy benchmark's protocol arithmetic (benchmarks/bench_accuracy.py), in process.

The end-to-end run is the smoke entry of test_benchmarks.py; here: spans, the n_steps rule,
MASE and coverage against hand computations, the conformal rank of the iterative intervals,
the panel subset and the one-line refusals.
"""

from __future__ import annotations

import json
import runpy
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import ROOT, run_as_main

from seqforecast.backtest.table import conformal_bounds
from seqforecast.errors import ConfigError, InputError

bench = runpy.run_path(str(ROOT / "benchmarks" / "bench_accuracy.py"))


def test_spans_give_six_origins_each_to_val_and_test() -> None:
    assert bench["spans"](72, 18) == (26, 23, 23)  # usaccdeaths: 26 training rows
    assert bench["spans"](150, 6) == (128, 11, 11)
    train, val, _ = bench["spans"](100, 6)
    cut = bench["span_cutoffs"](train + val, 100, 6, 6)
    assert list(cut) == list(range(88, 94))  # last origin's targets are rows 94..99
    with pytest.raises(InputError, match="too short for horizon=18"):
        bench["spans"](47, 18)


def test_n_steps_rule() -> None:
    rule = bench["n_steps_rule"]
    assert rule(12, 18, 400, 18) == 36  # 2 h
    assert rule(52, 13, 1300, 13) == 104  # 2 m
    assert rule(1, 1, 100, 1) == 8
    assert rule(12, 18, 26, 18) == 4  # (26 - 18) // 2: bounded by the training rows
    assert rule(12, 18, 26, 1) == 12


def test_mase_and_coverage_by_hand() -> None:
    train = np.array([1.0, 3.0, 2.0, 6.0, 4.0])  # season 2: |2-1|, |6-3|, |4-2| -> mean 2
    actual = np.array([[5.0, 7.0], [8.0, 4.0]])
    forecast = np.array([[4.0, 7.0], [5.0, 4.0]])  # |errors| 1, 0, 3, 0 -> mean 1
    assert bench["mase"](actual, forecast, train, 2) == pytest.approx(0.5, abs=1e-12)
    lo, hi = forecast - 1.5, forecast + 1.5
    assert bench["coverage"](actual, lo, hi) == pytest.approx(75.0, abs=1e-9)  # percent


def test_iterative_interval_is_the_ceil_n_plus_1_times_0_8_smallest_error() -> None:
    val_actual = np.zeros((6, 2))
    val_f = np.array([[1, 6], [5, 5], [2, 4], [6, 3], [3, 2], [4, 1]], dtype=float)
    # n = 6: rank ceil(7 * 0.8) = 6, the largest |error| of each step
    lo, hi = conformal_bounds(val_actual, val_f, np.zeros((1, 2)), [80])[80]
    assert np.allclose(hi, [[6.0, 6.0]]) and np.allclose(lo, [[-6.0, -6.0]])
    # n = 9: rank ceil(10 * 0.8) = 8
    errs = np.arange(1.0, 10.0)[:, np.newaxis]  # [9, 1]
    _, hi = conformal_bounds(np.zeros((9, 1)), errs, np.zeros((1, 1)), [80])[80]
    assert hi[0, 0] == pytest.approx(8.0, abs=1e-12)


def _catalog(tmp_path: Path) -> Path:
    rows = []
    for k, start in enumerate(["2000-01-01", "2000-01-01", "2001-01-01", "2000-01-01"]):
        end = "2009-12-01" if k < 3 else "2008-12-01"  # the last one ends early
        for d in pd.date_range(start, end, freq="MS"):
            rows.append({"id": f"s{k}", "date": d.strftime("%Y-%m-%d"), "v": float(k)})
    pd.DataFrame(rows).to_csv(tmp_path / "pan.csv", index=False)
    entry = {"season": 12, "horizon": 6, "columns": ["id", "date", "v"], "note": "panel: 4"}
    (tmp_path / "series.json").write_text(json.dumps({"pan": entry}))
    return tmp_path


def test_a_panel_keeps_the_series_ending_together_and_picks_evenly(tmp_path: Path) -> None:
    (s,) = bench["read_catalog"](_catalog(tmp_path), None)
    assert (s.id, s.time, s.target, s.season, s.horizon) == ("id", "date", "v", 12, 6)
    assert list(bench["read_series"](s, 0)) == ["s0", "s1", "s2"]
    assert list(bench["read_series"](s, 2)) == ["s0", "s2"]  # evenly from the sorted ids


def test_refusals_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(InputError, match=r"data folder .*nowhere does not exist"):
        bench["read_catalog"](tmp_path / "nowhere", None)
    with pytest.raises(ConfigError, match=r"--series \['nope'\] are not in"):
        bench["read_catalog"](_catalog(tmp_path), ["nope"])
    for argv, match in [
        (["--configs", "lstm"], "--configs ['lstm'] unknown"),
        (["--stats", "Prophet"], "--stats ['Prophet'] unknown"),
        (["--n-steps", "many"], "--n-steps='many'"),
        (["--out", "x.txt"], "expected a .json or .csv file"),
        (["--data", str(tmp_path / "nowhere")], "does not exist; give one with --data"),
    ]:
        with pytest.raises(SystemExit) as stop:
            bench["main"](argv)
        err = capsys.readouterr().err
        assert stop.value.code == 2 and err.startswith("error: ") and match in err
        assert err.count("\n") == 1


def test_the_quick_example_data_is_a_valid_catalog(tmp_path: Path) -> None:
    catalog = bench["read_catalog"](bench["write_example"](tmp_path), None)
    assert [(s.name, s.id) for s in catalog] == [("example_a", None), ("example_b", None)]
    for s in catalog:
        (g,) = bench["read_series"](s, 0).values()
        assert bench["spans"](len(g), s.horizon)[0] >= 2 * s.season


@pytest.mark.slow
@pytest.mark.smoke
def test_quick_without_the_data_folder_runs_on_synthetic_series(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    # A checkout with no data folder beside it: the script's copy under tmp_path/repo.
    repo = tmp_path / "repo"
    (repo / "benchmarks").mkdir(parents=True)
    (repo / "conf").symlink_to(ROOT / "conf")
    script = repo / "benchmarks" / "bench_accuracy.py"
    script.write_text((ROOT / "benchmarks" / "bench_accuracy.py").read_text())
    out = tmp_path / "acc.csv"
    args = ["--quick", "--work", str(tmp_path / "work"), "--out", str(out)]
    done = run_as_main(script, args, tmp_path, monkeypatch, capfd)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "runs on two synthetic series" in done.stdout
    table = pd.read_csv(out)
    assert sorted(set(table["series"])) == ["example_a", "example_b"]
    assert sorted(set(table["model"])) == ["AutoETS", "SeasonalNaive", "linear", "linear+last"]
    assert np.isfinite(table["mase"]).all() and table["coverage_80"].between(0, 100).all()


@pytest.mark.slow
def test_auto_rows_score_the_chosen_forecast_at_the_test_origins(tmp_path: Path) -> None:
    data = bench["write_example"](tmp_path / "data")
    (s,) = bench["read_catalog"](data, ["example_a"])
    parts = bench["read_series"](s, 0)
    args = bench["parse_args"](["--auto-seeds", "1", "--auto-epochs", "1"])
    res = bench["Result"]()
    bench["run_stats"](s, parts, ["SeasonalNaive"], res)
    bench["run_auto"](s, parts, tmp_path / "work", args, res)
    # statsforecast's SeasonalNaive (the bench's row) and the auto run's own numpy one agree
    test = pd.read_csv(tmp_path / "work" / "example_a-auto" / "out" / "test.csv")
    y = parts["example_a"]["value"].to_numpy()
    train = y[: bench["spans"](len(y), s.horizon)[0]]
    actual = test["y"].to_numpy().reshape(6, s.horizon)
    for row, column in (("SeasonalNaive", "seasonal_naive"), ("auto", "auto")):
        f = test[column].to_numpy().reshape(6, s.horizon)
        assert res.mase[row]["example_a"] == pytest.approx(
            bench["mase"](actual, f, train, s.season), rel=1e-9
        )
    assert res.mase["auto"]["example_a"] != res.mase["SeasonalNaive"]["example_a"]
    best = res.notes[-1].split("best single ")[1]
    f = test[best].to_numpy().reshape(6, s.horizon)
    expected = bench["mase"](actual, f, train, s.season)
    assert res.mase["auto/best1"]["example_a"] == pytest.approx(expected, rel=1e-9)

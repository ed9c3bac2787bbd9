"""Panels (``data.id``): series read from a long table, split and scaled per series, windowed
lazily, with known-future inputs and calendar features; trained, scored and forecast."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import compose_cfg, run_script, scaled_tol
from omegaconf import DictConfig

from seqforecast.data.batches import batch_loader
from seqforecast.data.example import panel_frame
from seqforecast.data.files import FileDataModule
from seqforecast.data.panel import calendar_features
from seqforecast.errors import ConfigError, InputError
from seqforecast.predict.checkpoint import load_module
from seqforecast.train import train

N, K = 8, 3  # n_steps, horizon
TINY = [
    f"n_steps={N}",
    f"horizon={K}",
    "data.batch_size=64",
    "trainer.accelerator=cpu",
    "trainer.enable_model_summary=false",
    "trainer.log_every_n_steps=1",
]


def panel_args(data: Path) -> list[str]:
    """Overrides for ``data=csv`` on a panel with ids ``series`` and time ``date``, tiny."""
    return ["data=csv", f"data.path={data}", "data.id=series", "data.time=date", *TINY]


def panel_cfg(out: Path, data: Path, *overrides: str) -> DictConfig:
    """The real config with :func:`panel_args`."""
    return compose_cfg(out, *panel_args(data), *overrides, tiny=False)


@pytest.fixture(scope="module")
def panel_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """6 series x 100 daily rows of the example panel (read only)."""
    path = tmp_path_factory.mktemp("panel") / "panel.csv"
    panel_frame(series=6, rows=100, seed=7).to_csv(path, index=False)
    return path


def module(path: Path, **kw) -> FileDataModule:
    args = {"path": str(path), "id": "series", "time": "date", "n_steps": N, "horizon": K}
    dm = FileDataModule(**{**args, **kw})
    dm.setup()
    return dm


def by_hand(path: Path) -> dict[str, pd.DataFrame]:
    frame = pd.read_csv(path)
    return {key: rows.reset_index(drop=True) for key, rows in frame.groupby("series")}


# --- reading, split, scaling, windows ---------------------------------------------------------


def test_each_series_is_split_and_scaled_on_its_own_training_rows(panel_csv: Path) -> None:
    dm = module(panel_csv, split=[0.7, 0.2, 0.1], target_kind="seq2seq")
    series = by_hand(panel_csv)
    assert dm.keys == [(k,) for k in sorted(series)]
    # 100 rows: 70 / 20 / 10 per series; windows 70 - 8 - 3 + 1, 20 - 3 + 1, 10 - 3 + 1.
    assert [len(dm.splits[s]) for s in ("train", "val", "test")] == [6 * 60, 6 * 18, 6 * 8]
    x, y = dm.arrays("val")
    for s, key in enumerate(sorted(series)):
        value = series[key]["value"].to_numpy()
        mean, std = value[:70].mean(), value[:70].std()
        np.testing.assert_allclose(dm.scaler.center[s, 0], mean, rtol=1e-6)
        scaled = (value - mean) / std
        for j in range(18):  # val window j: origin 69 + j, targets 70 + j .. 72 + j
            o, w = 69 + j, s * 18 + j
            tol = scaled_tol(scaled, 1e-5)  # float32 rounding of the scaled series
            np.testing.assert_allclose(x[w, :, 0], scaled[o - N + 1 : o + 1], **tol)
            want = np.stack([scaled[o - N + 2 + t : o - N + 2 + t + K] for t in range(N)])
            np.testing.assert_allclose(y[w], want, **tol)


def test_global_scaling_is_fitted_over_every_series_training_rows(panel_csv: Path) -> None:
    dm = module(panel_csv, split=[0.7, 0.2, 0.1], scaling_scope="global")
    train_rows = np.concatenate([s["value"].to_numpy()[:70] for s in by_hand(panel_csv).values()])
    assert dm.scaler.center.shape == (1,)
    np.testing.assert_allclose(dm.scaler.center[0], train_rows.mean(), rtol=1e-6)
    np.testing.assert_allclose(dm.scaler.scale[0], train_rows.std(), rtol=1e-6)


def test_dates_split_every_series_at_the_same_times(tmp_path: Path) -> None:
    frame = panel_frame(series=2, rows=60, seed=1)
    frame = frame[~((frame.series == "s001") & (frame.index % 60 < 10))]  # s001 starts later
    path = tmp_path / "p.csv"
    frame.to_csv(path, index=False)
    dm = module(path, split=["2020-02-10", "2020-02-20"], scaling="none")
    # val = Feb 10..19 (10 rows each), test = Feb 20..29 (10 rows); train: 40 and 30 rows.
    assert [len(dm.splits[s]) for s in ("train", "val", "test")] == [30 + 20, 16, 16]


def test_known_future_inputs_reach_each_step_for_the_rows_it_forecasts(panel_csv: Path) -> None:
    dm = module(panel_csv, split=[70, 20, 10], scaling="none", future_inputs=["promo"])
    assert dm.n_features == 1 + 1 + K  # value, promo, then promo at t + 1 .. t + k
    x, y = dm.arrays("train")
    first = by_hand(panel_csv)["s000"]
    value, promo = first["value"].to_numpy(), first["promo"].to_numpy()
    for o in (N - 1, 30, 70 - K - 1):  # windows of s000 (series 0 comes first)
        w = o - (N - 1)
        np.testing.assert_allclose(x[w, :, 0], value[o - N + 1 : o + 1], rtol=1e-6)
        np.testing.assert_array_equal(x[w, :, 1], promo[o - N + 1 : o + 1])
        for t in range(N):  # step t (row o - N + 1 + t) sees promo of the k rows after it
            row = o - N + 1 + t
            np.testing.assert_array_equal(x[w, t, 2:], promo[row + 1 : row + 1 + K])
        np.testing.assert_allclose(y[w], value[o + 1 : o + 1 + K], rtol=1e-6)


def test_calendar_features_are_sin_cos_pairs_of_the_dates() -> None:
    dates = pd.Series(pd.to_datetime(["2020-01-01", "2020-01-05", "2020-12-31"]))
    got = calendar_features(dates, ["dayofweek", "month"], "date")
    dow, month = np.array([2, 6, 3]), np.array([1, 1, 12])  # Wed, Sun, Thu
    want = np.stack(
        [
            np.sin(2 * np.pi * dow / 7),
            np.cos(2 * np.pi * dow / 7),
            np.sin(2 * np.pi * month / 12),
            np.cos(2 * np.pi * month / 12),
        ],
        axis=1,
    )
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
    with pytest.raises(InputError, match="needs dates in the time column 't'"):
        calendar_features(pd.Series([1.0, 2.0]), ["month"], "t")
    with pytest.raises(ConfigError, match=r"data.calendar=\['month'\] .*set data.time"):
        FileDataModule(calendar=["month"])


def test_short_series_are_reported_and_skipped(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    frame = panel_frame(series=3, rows=100, seed=2)
    frame = frame[~((frame.series == "s001") & (frame.index % 100 >= 12))]  # 12 rows
    path = tmp_path / "p.csv"
    frame.to_csv(path, index=False)
    with caplog.at_level(logging.WARNING):
        dm = module(path, split=[0.7, 0.2, 0.1])
    assert dm.keys == [("s000",), ("s002",)]
    assert dm.skipped == ["series=s001 (12 rows)"]
    assert "skipped 1 of 3 series too short" in caplog.text and "series=s001" in caplog.text
    assert caplog.text.count("skipped 1 of 3 series") == 1  # reported once, not per stage
    with pytest.raises(InputError, match="all 3 series are too short"):
        module(path, split=[0.7, 0.2, 0.1], n_steps=90)


def test_lazy_batches_equal_the_materialised_windows_on_every_rank(panel_csv: Path) -> None:
    dm = module(panel_csv, split=[0.7, 0.2, 0.1], future_inputs=["promo"], target_kind="seq2seq")
    x, y = dm.arrays("train")
    seen = []
    for rank in (0, 1):
        loader = batch_loader(dm.splits["train"], 16, seed=3, rank=rank, world_size=2)
        for idx, (bx, by) in zip(loader.sampler, loader, strict=True):
            np.testing.assert_array_equal(bx.numpy(), x[idx.numpy()])
            np.testing.assert_array_equal(by.numpy(), y[idx.numpy()])
            seen.append(idx)
    assert sorted(torch.cat(seen).tolist()) == list(range(len(x)))  # halves, no overlap


# --- training and prediction ------------------------------------------------------------------


@pytest.fixture(scope="module")
def panel_run(panel_csv: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """seq2seq, promo as a known-future input, 2 epochs on the 6-series panel."""
    out = tmp_path_factory.mktemp("panel_run")
    train(panel_cfg(out, panel_csv, "model=seq2seq", "trainer.max_epochs=2", *FUTURE))
    return out


FUTURE = ["data.future_inputs=[promo]", "data.calendar=[dayofweek]"]


def test_metrics_aggregate_over_series_and_per_series(panel_run: Path) -> None:
    metrics = json.loads((panel_run / "metrics.json").read_text())
    table = pd.read_csv(panel_run / "series_metrics.csv")
    assert metrics["series"] == 6 and metrics["skipped_series"] == []
    assert list(table["series"]) == [f"s{i:03d}" for i in range(6)]
    for stage in ("val", "test"):
        n = table[f"{stage}/windows"]
        pooled = (table[f"{stage}/mae"] * n).sum() / n.sum()  # every window has k steps
        assert metrics[f"{stage}/mae"] == pytest.approx(pooled, rel=1e-6)
        mse = (table[f"{stage}/rmse"] ** 2 * n).sum() / n.sum()
        assert metrics[f"{stage}/rmse"] == pytest.approx(np.sqrt(mse), rel=1e-6)


def future_input(path: Path, out: Path, rows: int = K) -> Path:
    """The panel with each series' last ``rows`` targets emptied: its known future."""
    frame = pd.read_csv(path)
    last = frame.groupby("series").cumcount(ascending=False) < rows
    frame.loc[last, "value"] = np.nan
    frame.to_csv(out, index=False)
    return out


def test_predict_forecasts_each_series_past_its_last_target(
    panel_run: Path, panel_csv: Path, tmp_path: Path, run_main
) -> None:
    source = future_input(panel_csv, tmp_path / "in.csv")
    ckpt = panel_run / "checkpoints" / "best.ckpt"
    result = run_main(
        "predict.py", f"ckpt_path={ckpt}", f"input={source}", f"hydra.run.dir={tmp_path / 'p'}",
        "progress=false", cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    table = pd.read_csv(tmp_path / "p" / "predictions.csv")
    assert list(table.columns) == [
        "series", "step", "date", "value", "lo-80", "hi-80", "lo-95", "hi-95"
    ]  # fmt: skip
    assert len(table) == 6 * K
    # By hand: scale the window with the checkpoint's per-series statistics, forecast, unscale.
    state = torch.load(ckpt, weights_only=True)["FileDataModule"]
    center = np.asarray(state["scaler"]["center"])  # [S, F]
    scale = np.asarray(state["scaler"]["scale"])
    model = load_module(ckpt).eval()
    frame = pd.read_csv(panel_csv)
    for s, (key, rows) in enumerate(frame.groupby("series")):
        dates = pd.to_datetime(rows["date"]).reset_index(drop=True)
        cal = calendar_features(dates, ["dayofweek"], "date")  # [100, 2]
        feats = np.column_stack([rows["value"], rows["promo"], cal])  # [100, 4]
        feats = (feats - center[s]) / scale[s]
        end = len(rows) - K  # the first emptied row
        window = feats[end - N : end]  # [N, 4]
        first = end - N + 1  # the row after the first input step
        ahead = np.stack([feats[first + t : first + t + K, 1:].ravel() for t in range(N)])
        x = np.concatenate([window, ahead], axis=1)[None]  # [1, N, 4 + K * 3]
        with torch.inference_mode():
            point = model.forecast(torch.tensor(x, dtype=torch.float32)).numpy()[0]
        got = table[table.series == key]
        want = point * scale[s, 0] + center[s, 0]
        np.testing.assert_allclose(got["value"], want, **scaled_tol(want, 1e-5))
        assert list(got["date"]) == [d.strftime("%Y-%m-%d") for d in dates[end:]]
        assert (got["lo-80"] < got["value"]).all() and (got["value"] < got["hi-80"]).all()


def test_future_timestamps_follow_each_series_own_spacing(tmp_path: Path) -> None:
    rows = 60
    daily = pd.date_range("2021-01-01", periods=rows, freq="D")
    weekly = pd.date_range("2021-01-03", periods=rows, freq="W-SUN")
    frame = pd.concat(
        [
            pd.DataFrame({"series": "a", "date": daily, "value": np.sin(np.arange(rows))}),
            pd.DataFrame({"series": "b", "date": weekly, "value": np.cos(np.arange(rows))}),
        ]
    )
    path = tmp_path / "mixed.csv"
    frame.to_csv(path, index=False)
    out = tmp_path / "run"
    train(panel_cfg(out, path, "model=gru", "trainer.max_epochs=1", "levels=[]"))
    from seqforecast import load_forecaster

    table = load_forecaster(out / "checkpoints" / "best.ckpt").forecast_table(path, ahead=2)
    got = {k: list(g["date"]) for k, g in table.groupby("series")}
    assert got["a"] == list(pd.date_range("2021-03-02", periods=2, freq="D"))
    assert got["b"] == list(pd.date_range(weekly[-1], periods=3, freq="W-SUN")[1:])


def test_unknown_ids_are_refused_by_name_unless_scaled_globally(
    panel_csv: Path, tmp_path: Path, run_main
) -> None:
    frame = pd.read_csv(panel_csv)
    frame.loc[frame.series == "s003", "series"] = "new"
    path = tmp_path / "renamed.csv"
    frame.to_csv(path, index=False)
    out = tmp_path / "run"
    train(panel_cfg(out, panel_csv, "model=gru", "trainer.max_epochs=1", "levels=[]"))
    result = run_main(
        "predict.py", f"ckpt_path={out / 'checkpoints' / 'best.ckpt'}", f"input={path}",
        f"hydra.run.dir={tmp_path / 'p'}", cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 2
    line = result.stderr.strip().splitlines()[-1]
    assert "series ['series=new'] were not among the 6 series this model was trained on" in line
    glob = tmp_path / "global"
    train(
        panel_cfg(
            glob, panel_csv, "model=gru", "trainer.max_epochs=1", "levels=[]",
            "data.scaling_scope=global",
        )
    )  # fmt: skip
    from seqforecast import load_forecaster

    table = load_forecaster(glob / "checkpoints" / "best.ckpt").forecast_table(path)
    assert sorted(set(table["series"])) == ["new", "s000", "s001", "s002", "s004", "s005"]


# --- bad input: one line, exit 2 -------------------------------------------------------------


def bad_tables(tmp_path: Path) -> dict[str, tuple[pd.DataFrame, list[str], str]]:
    frame = panel_frame(series=2, rows=40, seed=3)
    dup = pd.concat([frame, frame.iloc[[45]]]).sort_index(kind="stable")
    back = frame.copy()
    back.loc[[44, 45], "date"] = back.loc[[45, 44], "date"].to_numpy()
    gap = frame.drop(index=50)
    return {
        "duplicate": (dup, [], "series series=s001: duplicate rows for time 2020-01-06"),
        "unordered": (back, [], "series series=s001: time column 'date' does not increase"),
        "no id column": (frame, ["data.id=store"], "no column ['store']"),
        "gap": (gap, [], "series series=s001: time column 'date' skips 1 timestamps"),
    }


@pytest.mark.parametrize("case", ["duplicate", "unordered", "no id column", "gap"])
def test_bad_panels_stop_with_one_line(tmp_path: Path, run_main, case: str) -> None:
    frame, extra, message = bad_tables(tmp_path)[case]
    path = tmp_path / "bad.csv"
    frame.to_csv(path, index=False)
    result = run_main(
        "train.py", *panel_args(path), *extra, f"hydra.run.dir={tmp_path / 'r'}", cwd=tmp_path
    )
    assert result.returncode == 2, result.stderr[-2000:]
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith("error: ") and message in line, line


def test_future_rows_of_a_series_without_history_are_refused_by_name(
    panel_run: Path, panel_csv: Path, tmp_path: Path
) -> None:
    source = future_input(panel_csv, tmp_path / "in.csv")
    frame = pd.read_csv(source)
    extra = frame[frame.series == "s000"].tail(K).assign(series="s999")  # future rows only
    pd.concat([frame, extra]).to_csv(source, index=False)
    from seqforecast import load_forecaster

    forecaster = load_forecaster(panel_run / "checkpoints" / "best.ckpt")
    with pytest.raises(InputError) as err:
        forecaster.forecast_table(source)
    assert str(err.value) == (
        f"input {source}: future rows (target empty) for series ['series=s999'], which have "
        "no rows with the target; each series to forecast needs its history in the table"
    )
    assert len(forecaster.forecast_table(future_input(panel_csv, tmp_path / "ok.csv"))) == 6 * K


def test_missing_future_inputs_at_predict_time_stop_with_one_line(
    panel_run: Path, panel_csv: Path, tmp_path: Path, run_main
) -> None:
    source = future_input(panel_csv, tmp_path / "in.csv", rows=K - 1)  # one row short
    result = run_main(
        "predict.py", f"ckpt_path={panel_run / 'checkpoints' / 'best.ckpt'}", f"input={source}",
        f"hydra.run.dir={tmp_path / 'p'}", cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 2
    line = result.stderr.strip().splitlines()[-1]
    assert "series series=s000: the future inputs ['promo'] are needed for the 3 rows" in line
    assert "found 2 complete ones" in line
    assert not (tmp_path / "p" / "predictions.csv").exists()


# --- the promotion panel, sweeps, DDP ---------------------------------------------------------


def test_example_panel_has_known_promotion_spikes(tmp_path: Path, run_main) -> None:
    from seqforecast.data.example import main

    main([str(tmp_path / "panel.csv"), "--series", "5", "--rows", "200"])
    frame = pd.read_csv(tmp_path / "panel.csv")
    assert list(frame.columns) == ["series", "date", "value", "promo"] and len(frame) == 1000
    assert sorted(set(frame["promo"])) == [0, 1]
    for _, rows in frame.groupby("series"):
        lift = rows.loc[rows.promo == 1, "value"].mean() - rows.loc[rows.promo == 0, "value"].mean()
        spread = rows.loc[rows.promo == 0, "value"].std()
        assert lift > 1.0 and lift > spread  # three amplitudes over the series' own swing


def test_the_promotion_flag_beats_the_same_model_without_it(tmp_path: Path) -> None:
    path = tmp_path / "panel.csv"
    panel_frame(series=8, rows=200, seed=11).to_csv(path, index=False)
    common = ["model=seq2seq", "horizon=5", "trainer.max_epochs=4", "levels=[]"]
    without = train(panel_cfg(tmp_path / "without", path, *common))
    with_flag = train(panel_cfg(tmp_path / "with", path, *common, "data.future_inputs=[promo]"))
    # The flag lifts a promoted day by three amplitudes: unforecastable without it (seen: the
    # flag's MSE is 0.07 of the other's).
    assert with_flag["test/mse_last"] < 0.5 * without["test/mse_last"]


@pytest.mark.slow
def test_multirun_on_a_panel_fills_the_results_table(panel_csv: Path, tmp_path: Path) -> None:
    base = panel_args(panel_csv)
    result = run_script(
        "train.py", "-m", *base, "model=gru,seq2seq", "trainer.max_epochs=1", "levels=[]",
        f"hydra.sweep.dir={tmp_path / 'sweep'}", cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    summary = pd.read_csv(tmp_path / "sweep" / "summary.csv")
    assert len(summary) == 2 and set(summary["status"]) == {"finished"}


@pytest.mark.smoke
@pytest.mark.slow
def test_ddp_ranks_share_the_panel_windows(panel_csv: Path, tmp_path: Path) -> None:
    """Two gloo ranks of batch 16 train exactly the single-process batch-32 run."""
    common = ["model=seq2seq", "trainer.max_epochs=1", "levels=[]", "data.split=[0.7,0.2,0.1]"]
    base = panel_args(panel_csv)
    ddp = run_script(
        "train.py", *base, *common, "trainer=ddp_cpu", "data.batch_size=16",
        f"hydra.run.dir={tmp_path / 'ddp'}", cwd=tmp_path,
    )  # fmt: skip
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    want = train(panel_cfg(tmp_path / "one", panel_csv, *common, "data.batch_size=32"))
    got = json.loads((tmp_path / "ddp" / "metrics.json").read_text())
    for key in ("val/mse", "test/mse_last", "test/mae"):
        assert got[key] == pytest.approx(want[key], rel=1e-5), key
    ckpt = torch.load(tmp_path / "ddp" / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["global_step"] == -(-6 * 60 // 32)  # 360 windows: each rank 180, 12 steps


def test_one_series_takes_known_future_inputs_too(tmp_path: Path) -> None:
    frame = panel_frame(series=1, rows=120, seed=5).drop(columns="series")
    path = tmp_path / "one.csv"
    frame.to_csv(path, index=False)
    out = tmp_path / "run"
    base = ["data=csv", f"data.path={path}", "data.time=date", *TINY, "model=gru"]
    cfg = compose_cfg(out, *base, "trainer.max_epochs=1", "data.future_inputs=[promo]", tiny=False)
    train(cfg)
    from seqforecast import load_forecaster

    f = load_forecaster(out / "checkpoints" / "best.ckpt")
    assert f.n_features == 2 + K  # value, promo, promo at t + 1 .. t + k
    source = tmp_path / "in.csv"  # the last k targets emptied: promo is known for them
    frame.loc[frame.index[-K:], "value"] = np.nan
    frame.to_csv(source, index=False)
    table = f.forecast_table(source, levels=[80])
    assert list(table.columns) == ["step", "date", "value", "lo-80", "hi-80"]
    assert list(table["date"]) == list(pd.to_datetime(frame["date"].iloc[-K:]))


# One option per kind of network (the rest share their input layer with one of these).
FUTURE_OPTIONS = ["conv_gru", "naive", "linear", "simple_rnn", "lstm", "ln_rnn", "wavenet"]


@pytest.mark.parametrize(
    "option",
    [o if o == "conv_gru" else pytest.param(o, marks=pytest.mark.slow) for o in FUTURE_OPTIONS],
)
def test_every_option_takes_known_future_inputs(
    option: str, panel_csv: Path, tmp_path: Path
) -> None:
    """Every model option trains and forecasts with the wider input (1 + 1 + 2 + 2 k)."""
    out = tmp_path / "run"
    future = ["data.future_inputs=[promo]", "data.calendar=[dayofweek]", "levels=[]"]
    one_step = ["horizon=1"] if option == "simple_rnn" else []  # its state is the forecast
    cfg = panel_cfg(out, panel_csv, f"model={option}", "trainer.max_epochs=1", *future, *one_step)
    train(cfg)
    from seqforecast import load_forecaster

    f = load_forecaster(out / "checkpoints" / "best.ckpt")
    k = f.horizon  # 1-step options keep their own horizon
    assert f.n_features == 4 + 3 * k  # value, promo, dow sin/cos, then 3 per step ahead
    table = f.forecast_table(future_input(panel_csv, tmp_path / "in.csv", rows=k))
    assert len(table) == 6 * k and np.isfinite(table["value"]).all()


def test_two_id_columns_name_a_series_together(tmp_path: Path) -> None:
    frame = panel_frame(series=4, rows=60, seed=9)
    frame["store"] = frame["series"].map({"s000": "a", "s001": "a", "s002": "b", "s003": "b"})
    frame["item"] = frame["series"].map({"s000": 1, "s001": 2, "s002": 1, "s003": 2})
    path = tmp_path / "two.csv"
    by_time = frame.drop(columns="series").sort_values(["date", "store", "item"], kind="stable")
    by_time.to_csv(path, index=False)  # the series interleaved, as a table sorted by time
    dm = module(path, id=["store", "item"], split=[0.7, 0.2, 0.1], scaling="none")
    assert dm.keys == [("a", "1"), ("a", "2"), ("b", "1"), ("b", "2")]
    x, _ = dm.arrays("train")
    want = frame[frame.series == "s002"]["value"].to_numpy()[:N]  # store b, item 1: the third
    np.testing.assert_allclose(x[2 * (42 - N - K + 1), :, 0], want, rtol=1e-6)

"""Ensembles as one artifact (seqforecast.ensemble): a folder of members and a manifest that
predict, backtest, export and the Python API load like a checkpoint; combinations checked
against the members' own forecasts, statistical members against statsforecast by hand."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import scaled_tol
from test_backtest import ROWS, SPLIT, backtest_cfg, trained

from seqforecast import load_forecaster
from seqforecast.backtest.neural import model_forecasts
from seqforecast.backtest.origins import span_cutoffs
from seqforecast.backtest.task import backtest
from seqforecast.data.table import load_table
from seqforecast.ensemble import MANIFEST, EnsembleForecaster, save_ensemble
from seqforecast.errors import ConfigError, InputError, OutputError

H, SEASON = 5, 7


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Two seeds of a linear model and one GRU (horizon 5) on the 300-row example file."""
    root = tmp_path_factory.mktemp("ens")
    seeds = [trained(root, "model=linear", f"horizon={H}", f"seed={s}", run=f"{s}") for s in (1, 2)]
    gru = trained(root, "model=gru", f"horizon={H}", "model.hidden=[4]", run="gru")
    return [*seeds, gru]


def values(fc) -> np.ndarray:
    return load_table(fc.data["path"], ["value"], "date").values  # [R, 1]


def test_a_seed_ensemble_forecasts_the_weighted_mean_of_its_members(ckpts, tmp_path) -> None:
    a, b, gru = ckpts
    save_ensemble(tmp_path / "e", {"lin": [a, b], "gru": [gru]}, H, weights={"lin": 3, "gru": 1})
    ens = load_forecaster(tmp_path / "e", "cpu")
    assert isinstance(ens, EnsembleForecaster) and (ens.n_steps, ens.horizon) == (20, H)
    fa, fb, fg = (load_forecaster(p, "cpu").forecast_table(values_path(p)) for p in ckpts)
    want = 0.75 * (fa["value"] + fb["value"]) / 2 + 0.25 * fg["value"]
    got = ens.forecast_table(values_path(a))
    np.testing.assert_allclose(got["value"], want, **scaled_tol(want, 1e-5))
    pd.testing.assert_series_equal(got["date"], fa["date"])
    # The checkpoints were copied in: the folder is the artifact, whatever happens to the runs.
    manifest = json.loads((tmp_path / "e" / MANIFEST).read_text())
    assert manifest["members"][0]["checkpoints"] == ["members/lin/0.ckpt", "members/lin/1.ckpt"]
    assert (tmp_path / "e/members/lin/1.ckpt").read_bytes() == b.read_bytes()


def values_path(ckpt: Path) -> str:
    return load_forecaster(ckpt, "cpu").data["path"]


def test_the_median_with_statistical_members_refitted_in_the_data_units(ckpts, tmp_path) -> None:
    from statsforecast.models import AutoETS

    a = ckpts[0]
    members = {"lin": [a], "ets": "AutoETS", "snaive": "SeasonalNaive"}
    save_ensemble(tmp_path / "e", members, H, combine="median", season=SEASON, n_steps=60)
    ens = load_forecaster(tmp_path / "e", "cpu")
    assert ens.n_steps == 60  # the statistical members' history, longer than the net's window
    rows = values(ens)
    got = ens.forecast_rows(rows)["value"]
    lin = load_forecaster(a, "cpu").forecast_rows(rows)["value"]
    history = rows[-60:, 0].astype(np.float32).astype(np.float64)  # as a window holds it
    ets = AutoETS(season_length=SEASON).forecast(y=history, h=H)["mean"]
    j = np.arange(1, H + 1)
    snaive = history[59 + j - SEASON * ((j - 1) // SEASON + 1)]
    want = np.median([lin, ets, snaive], axis=0)
    np.testing.assert_allclose(got, want, **scaled_tol(want, 1e-4, 1e-5))


def test_a_backtest_of_an_ensemble_folder_forecasts_as_its_members(ckpts, tmp_path) -> None:
    a, b, _ = ckpts
    save_ensemble(tmp_path / "e", {"lin": [a, b]}, H)
    args = ["n_windows=4", "step_size=2", "device=cpu", "plot=false", "levels=[80]"]
    summary = backtest(backtest_cfg(tmp_path / "bt", f"ckpt_path={tmp_path / 'e'}", *args))
    assert summary["method"] == {"ensemble": f"direct ({H}-step model)"}
    table = pd.read_csv(tmp_path / "bt" / "backtest.csv")
    cutoffs = span_cutoffs(SPLIT[0] + SPLIT[1], ROWS, H, 4, 2)
    fa, fb = (load_forecaster(p, "cpu") for p in (a, b))
    want = sum(model_forecasts(f, values(f), cutoffs, H) for f in (fa, fb)).reshape(-1) / 2
    np.testing.assert_allclose(table["ensemble"], want, **scaled_tol(want, 1e-5))
    # Two ensembles (and a checkpoint) in one run: each named after the folder holding it.
    save_ensemble(tmp_path / "j2" / "ensemble", {"lin": [b]}, H)
    both = f"ckpt_path=[{tmp_path / 'e'},{tmp_path / 'j2' / 'ensemble'},{a}]"
    summary = backtest(backtest_cfg(tmp_path / "bt2", both, *args))
    assert list(summary["models"])[:3] == [f"ensemble-{tmp_path.name}", "ensemble-j2", "linear"]
    two = pd.read_csv(tmp_path / "bt2" / "backtest.csv")
    np.testing.assert_allclose(two[f"ensemble-{tmp_path.name}"], table["ensemble"], rtol=1e-6)


def test_export_writes_onnx_members_and_the_manifest_that_load_as_one(ckpts, tmp_path) -> None:
    pytest.importorskip("onnxruntime")
    from seqforecast.export import export_model
    from seqforecast.onnx import load_onnx

    a, b, gru = ckpts
    save_ensemble(tmp_path / "e", {"lin": [a, b], "gru": [gru]}, H, combine="median")
    files = export_model(tmp_path / "e", tmp_path / "onnx")
    assert files == [tmp_path / "onnx" / MANIFEST]
    onnx = load_onnx(tmp_path / "onnx")
    torch_ens = load_forecaster(tmp_path / "e", "cpu")
    rows = values(torch_ens)
    want = torch_ens.forecast_rows(rows)["value"]
    np.testing.assert_allclose(onnx.forecast_rows(rows)["value"], want, **scaled_tol(want, 1e-4))
    with pytest.raises(Exception, match="already holds an export"):
        export_model(tmp_path / "e", tmp_path / "onnx")


def test_members_with_other_data_settings_are_refused_naming_both(ckpts, tmp_path) -> None:
    ckpt = torch.load(ckpts[0], map_location="cpu", weights_only=True)
    ckpt["datamodule_hyper_parameters"]["split"] = [170, 90, 40]
    other = tmp_path / "other.ckpt"
    torch.save(ckpt, other)
    save_ensemble(tmp_path / "e", {"lin": [ckpts[0]], "other": [other]}, H)
    with pytest.raises(InputError) as err:
        load_forecaster(tmp_path / "e", "cpu")
    assert str(err.value) == (
        "ensemble members lin[0] and other[0] differ in data.split ([180, 80, 40] vs "
        "[170, 90, 40]); members must share their data settings and scaling"
    )


def _edit(folder: Path, change) -> None:
    manifest = json.loads((folder / MANIFEST).read_text())
    change(manifest)
    (folder / MANIFEST).write_text(json.dumps(manifest))


BAD = {
    "combine": (lambda m: m.update(combine="vote"), "combine='vote' is not allowed"),
    "format": (lambda m: m.update(format="other"), "format='other' is not allowed"),
    "horizon": (lambda m: m.update(horizon=0), "horizon=0 is not allowed"),
    "members": (lambda m: m.update(members=[]), "members=[] is not allowed"),
    "model": (lambda m: m["members"][1].update(model="Prophet"), "model='Prophet'; expected"),
    "weight": (lambda m: m["members"][0].update(weight=-1), "weight=-1; expected a number >= 0"),
    "setting": (
        lambda m: m["members"][1].update(settings={"order": [1, 0, 0]}),
        "settings.order is not a setting of AutoETS",
    ),
    "order": (
        lambda m: m["members"][1].update(model="ARIMA", settings=[{"order": [1, -1, 0]}]),
        "settings.order=[1, -1, 0]; expected 3 integers >= 0",
    ),
    "season": (
        lambda m: m["members"][1].update(model="SeasonalNaive", season=30),
        "repeats a season of 30 steps, longer than the window of n_steps=20",
    ),
    "outside": (
        lambda m: m["members"][0].update(checkpoints=["../../x.ckpt"]),
        "points outside the ensemble's folder",
    ),
    "missing": (
        lambda m: m["members"][0].update(checkpoints=["members/lin/9.ckpt"]),
        "member file not found",
    ),
}


@pytest.mark.parametrize("case", list(BAD))
def test_a_bad_manifest_is_one_line_naming_the_key(ckpts, tmp_path, case) -> None:
    save_ensemble(tmp_path / "e", {"lin": [ckpts[0]], "ets": "AutoETS"}, H, season=SEASON)
    change, words = BAD[case]
    _edit(tmp_path / "e", change)
    with pytest.raises(InputError, match=re.escape(words)) as err:
        load_forecaster(tmp_path / "e", "cpu")
    assert "\n" not in str(err.value) and str(tmp_path / "e") in str(err.value)


def test_an_ensemble_is_not_written_over_nor_left_half_written(ckpts, tmp_path) -> None:
    save_ensemble(tmp_path / "e", {"lin": [ckpts[0]]}, H)
    before = (tmp_path / "e" / MANIFEST).read_bytes()
    with pytest.raises(OutputError, match="already holds an ensemble"):
        save_ensemble(tmp_path / "e", {"lin": [ckpts[1]]}, H)
    assert (tmp_path / "e" / MANIFEST).read_bytes() == before
    shutil.rmtree(tmp_path / "e")
    with pytest.raises(Exception, match="not one of"):
        save_ensemble(tmp_path / "e", {"x": "Prophet"}, H)
    assert not (tmp_path / "e" / MANIFEST).exists()


# --- scripts/forecast.py's choice as one artifact ---------------------------------------------


def test_the_automatic_forecast_is_saved_as_an_ensemble_that_forecasts_the_same(tmp_path) -> None:
    from test_forecast_auto import STATS, make, write_monthly

    from seqforecast.auto_forecast.task import forecast

    csv = write_monthly(tmp_path / "m.csv")
    summary = forecast(make(tmp_path, f"input={csv}", STATS, "horizon=6", "top_k=2"))
    assert summary["model"] == str(tmp_path / "out" / "model")
    manifest = json.loads((tmp_path / "out/model" / MANIFEST).read_text())
    assert [m["name"] for m in manifest["members"]] == summary["members"]
    assert {m.get("model") for m in manifest["members"]} == {"AutoETS", "SeasonalNaive"}
    assert manifest["combine"] == "mean" and manifest["n_steps"] == 60  # the whole history
    want = pd.read_csv(tmp_path / "out" / "forecast.csv")
    got = load_forecaster(tmp_path / "out" / "model", "cpu").forecast_table(str(csv), levels=[80])
    # AutoETS is refitted on the float32 windows every forecaster reads, which moves its
    # optimum by ~1e-4 relative (seasonal naive copies values: exact).
    for ours, theirs in (("value", "auto"), ("lo-80", "auto-lo-80"), ("hi-80", "auto-hi-80")):
        np.testing.assert_allclose(got[ours], want[theirs], rtol=1e-3)


def test_a_panel_choice_forecasts_each_series_and_pools_its_calibration(tmp_path) -> None:
    from test_forecast_auto import make, write_monthly

    from seqforecast.auto_forecast.task import forecast

    csv = write_monthly(tmp_path / "p.csv", rows=48, ids=("a", "b"))
    pool = "pool=[seasonal_naive]"
    args = ["data.id=store", pool, "horizon=3", "top_k=1", "interval_scale=1.5"]
    forecast(make(tmp_path, f"input={csv}", *args))
    ens = load_forecaster(tmp_path / "out" / "model", "cpu")
    assert ens.series == [("a",), ("b",)] and ens.scaler.per_series and ens.n_steps == 12
    want = pd.read_csv(tmp_path / "out" / "forecast.csv")
    got = ens.forecast_table(str(csv), levels=[80])
    np.testing.assert_allclose(got["value"], want["auto"], **scaled_tol(want["auto"], 1e-6))
    # By hand: seasonal naive's errors at the 6 validation cutoffs over each series' std,
    # pooled (12 per step); the 80 % width is their ceil(13 * 0.8) = 11th smallest, times the
    # forecast's interval_scale.
    frame, j = pd.read_csv(csv), np.arange(1, 4)
    cuts = np.arange(48 - 3 - 6, 48 - 3)[:, None]  # [6, 1]
    scaled, stds = [], []
    for key in ("a", "b"):
        y = frame.loc[frame["store"] == key, "value"].to_numpy()
        stds.append(y.std())
        scaled.append((y[cuts + j] - y[cuts + j - 12]) / y.std())  # [6, 3]
    width = 1.5 * np.sort(np.abs(np.concatenate(scaled)), axis=0)[10]  # [3]
    np.testing.assert_allclose(ens.calibration.widths[0], width, **scaled_tol(width, 1e-6))
    half = (got["value"] - got["lo-80"]).to_numpy().reshape(2, 3)
    want_half = np.outer(stds, width)
    np.testing.assert_allclose(half, want_half, **scaled_tol(want_half, 1e-5))


def test_predict_and_the_service_read_an_ensemble_folder(ckpts, tmp_path) -> None:
    from test_predict import predict_cfg

    from seqforecast.predict.task import predict
    from seqforecast.serve.api import health_facts

    a, b, _ = ckpts
    save_ensemble(tmp_path / "e", {"lin": [a, b]}, H)
    ens = load_forecaster(tmp_path / "e", "cpu")
    csv = values_path(a)
    predict(predict_cfg(tmp_path / "p", f"ckpt_path={tmp_path / 'e'}", f"input={csv}", "plot=0"))
    table = pd.read_csv(tmp_path / "p" / "predictions.csv")
    want = ens.forecast_table(csv)["value"]
    np.testing.assert_allclose(table["value"], want, **scaled_tol(want, 1e-6))
    facts = health_facts(str(tmp_path / "e"))
    assert (facts["net"], facts["horizon"], facts["n_steps"]) == ("ensemble", H, 20)


def test_intervals_are_calibrated_on_the_combinations_own_val_errors(ckpts, tmp_path) -> None:
    a, b, _ = ckpts
    save_ensemble(tmp_path / "e", {"lin": [a, b]}, H)
    ens = load_forecaster(tmp_path / "e", "cpu")
    assert ens.levels == []
    cal = ens.calibration_for([80], "conformal")
    # By hand: the val windows' cutoffs (targets within rows 180..259), the members' mean.
    cutoffs = np.arange(SPLIT[0] - 1, SPLIT[0] + SPLIT[1] - H)  # 179..254
    fa, fb = (load_forecaster(p, "cpu") for p in (a, b))
    y = values(fa)[:, 0]
    mean = sum(model_forecasts(f, values(f), cutoffs, H) for f in (fa, fb)) / 2  # [76, H]
    errors = np.sort(np.abs(y[cutoffs[:, None] + np.arange(1, H + 1)] - mean), axis=0)
    rank = int(np.ceil((len(cutoffs) + 1) * 0.8))
    scale = fa.scaler.scale[0]  # widths are in the model's scale
    np.testing.assert_allclose(cal.widths[0] * scale, errors[rank - 1], rtol=1e-5)
    assert cal.n_calibration == len(cutoffs)
    with pytest.raises(ConfigError, match="^intervals=cqr reads the model's own quantiles"):
        ens.calibration_for([80], "cqr")  # its members' quantiles are not combined


# --- scripts/ensemble.py -----------------------------------------------------------------------


def ensemble_cfg(output_dir: Path, *overrides: str):
    from conftest import CONF
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose("ensemble", overrides=[f"output_dir={output_dir}", *overrides])


def test_the_script_saves_checkpoints_as_one_calibrated_ensemble(ckpts, tmp_path) -> None:
    from seqforecast.ensemble import build

    a, b, gru = ckpts
    members = f"members={{lin:[{a},{b}],gru:{gru}}}"
    summary = build(ensemble_cfg(tmp_path / "e", members, "weights={lin:3,gru:1}", "levels=[80]"))
    assert summary["description"] == (
        f"ensemble: mean of lin (2 checkpoints), gru (1 checkpoint); horizon {H}"
    )
    ens = load_forecaster(tmp_path / "e", "cpu")
    assert ens.levels == [80] and list(ens.weights) == [3.0, 1.0]
    save_ensemble(tmp_path / "same", {"lin": [a, b], "gru": [gru]}, H, weights={"lin": 3})
    same = load_forecaster(tmp_path / "same", "cpu")
    assert same.calibration_for([80]).widths.tolist() == ens.calibration.widths.tolist()


@pytest.mark.parametrize(
    "overrides, words",
    [
        ([], "members is required"),
        (["members={ets:AutoETS}"], "members: no network checkpoint"),
        (["members={a:[]}"], "members.a=[]: expected checkpoints or a model name"),
        (["members={a:AutoETS}", "horizon=0"], "horizon=0 is not allowed"),
        (["members={a:nothere.ckpt}"], "checkpoint not found: nothere.ckpt"),
    ],
)
def test_the_script_refuses_in_one_line(tmp_path, run_main, overrides, words) -> None:
    proc = run_main("ensemble.py", *overrides, "hydra.run.dir=out", cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("error: ") and words in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out" / MANIFEST).exists()


def test_the_chosen_arima_keeps_each_series_order_in_the_ensemble(tmp_path) -> None:
    from statsforecast.models import AutoARIMA
    from test_forecast_auto import make, write_monthly

    from seqforecast.auto_forecast.task import forecast

    csv = write_monthly(tmp_path / "p.csv", rows=48, ids=("a", "b"))
    pool = "pool=[seasonal_naive,auto_arima]"
    forecast(make(tmp_path, f"input={csv}", "data.id=store", pool, "horizon=3", "top_k=2"))
    manifest = json.loads((tmp_path / "out/model" / MANIFEST).read_text())
    arima = next(m for m in manifest["members"] if m["name"] == "auto_arima")
    assert arima["model"] == "ARIMA" and len(arima["settings"]) == 2
    frame = pd.read_csv(csv)
    for key, settings in zip(("a", "b"), arima["settings"], strict=True):
        y = frame.loc[frame["store"] == key, "value"].to_numpy()
        # By hand: AutoARIMA's own search on the rows up to the first validation origin.
        first = y[: 48 - 3 - 6 + 1]
        p, q, sp, sq, _, d, sd = AutoARIMA(season_length=12).fit(first).model_["arma"]
        assert settings["order"] == [p, d, q] and settings["seasonal_order"] == [sp, sd, sq]
    got = load_forecaster(tmp_path / "out" / "model", "cpu").forecast_table(str(csv))
    want = pd.read_csv(tmp_path / "out" / "forecast.csv")["auto"]
    np.testing.assert_allclose(got["value"], want, rtol=1e-3)  # ARIMA refitted on float32 rows

"""Export (ONNX, TorchScript) and torch-free inference: the exported graphs against torch, and
``OnnxForecaster`` against ``load_forecaster`` on the same checkpoints."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import MODEL_OPTIONS, compose_cfg, run_script

from seqforecast import load_forecaster
from seqforecast.data import two_sine_series
from seqforecast.data.example import example_frame
from seqforecast.data.files import FileDataModule
from seqforecast.data.scaling import Scaler
from seqforecast.errors import ConfigError, InputError
from seqforecast.export import FIXED_WINDOW, PointForecast, export_model
from seqforecast.module import ForecastModule
from seqforecast.onnx import OnnxForecaster
from seqforecast.predict import predict_intervals
from seqforecast.train import instantiate, train

ort = pytest.importorskip("onnxruntime")

QUICK = ("seq2seq",)  # the chapter's main model: the quick tier (the rest in the slow tier)
BATCHES = (1, 7, 1000)
TOL = 1e-5


def option_params(options: list[str]) -> list:
    return [o if o in QUICK else pytest.param(o, marks=pytest.mark.slow) for o in options]


def build(option: str, *overrides: str) -> ForecastModule:
    """The option's module as ``train.py`` builds it (composed config), untrained, seeded."""
    torch.manual_seed(0)
    cfg = compose_cfg(Path("unused"), f"model={option}", *overrides)
    return instantiate(cfg.model).eval()


def save_ckpt(path: Path, module: ForecastModule, **extra: object) -> Path:
    """A checkpoint with what ``read_checkpoint`` needs, plus ``extra`` entries."""
    state = {"hyper_parameters": dict(module.hparams), "state_dict": module.state_dict()}
    torch.save({**state, **extra}, path)
    return path


def windows(n: int, n_steps: int = 50, seed: int = 1) -> np.ndarray:
    """``n`` windows of the chapter's series: float32 ``[n, n_steps, 1]``."""
    return two_sine_series(n, n_steps, seed=seed).astype(np.float32)


def run_onnx(path: Path, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {"x": x})[0]


def torch_forecast(module: ForecastModule, x: np.ndarray, dtype=torch.float32) -> np.ndarray:
    with torch.inference_mode():
        return module.to(dtype).forecast(torch.from_numpy(x).to(dtype)).double().numpy()


def tolerance(module: ForecastModule, x: np.ndarray) -> float:
    """1e-5, except for a net whose own float32 rounding is larger: the layer-normalised RNN
    amplifies rounding about 10^3-fold, so its float32 torch output differs from float64 torch
    by ~5e-5 and two float32 implementations cannot agree to 1e-5 (docs/export.md)."""
    if module.hparams.net != "ln_rnn":
        return TOL
    rounding = np.abs(torch_forecast(module, x) - torch_forecast(module, x, torch.float64)).max()
    module.float()
    return TOL + 3 * rounding


# --- the exported graphs against torch ------------------------------------------------------


@pytest.mark.parametrize("option", option_params(MODEL_OPTIONS))
def test_point_forecast_is_the_modules_forecast(option: str) -> None:
    """The exported wrapper computes ``ForecastModule.forecast`` exactly."""
    x, module = torch.from_numpy(windows(5)), build(option)
    with torch.inference_mode():
        torch.testing.assert_close(PointForecast(module)(x), module.forecast(x), rtol=0, atol=0)


@pytest.mark.parametrize("option", option_params(MODEL_OPTIONS))
def test_onnx_matches_torch_over_batch_sizes(option: str, tmp_path: Path) -> None:
    module = build(option)
    paths = export_model(save_ckpt(tmp_path / "m.ckpt", module), tmp_path / "out")
    assert [p.name for p in paths] == ["model.onnx", "model.json"]
    info = json.loads(paths[1].read_text())
    assert info["fixed_window"] == (module.hparams.net in FIXED_WINDOW)
    assert info["verified_max_abs_diff"] < 1e-3
    x = windows(1000)
    tol = tolerance(module, x)
    for batch in BATCHES:
        got = run_onnx(paths[0], x[:batch])
        assert got.shape == (batch, module.hparams.horizon) and got.dtype == np.float32
        assert np.abs(got - torch_forecast(module, x[:batch])).max() <= tol, batch
    longer = windows(7, 50 + 13)  # a growing window's input
    if info["fixed_window"]:
        with pytest.raises(Exception, match="dimensions"):
            run_onnx(paths[0], longer)
    else:
        assert np.abs(run_onnx(paths[0], longer) - torch_forecast(module, longer)).max() <= TOL


@pytest.mark.parametrize("option", option_params(["seq2seq", "gru", "conv_gru"]))
def test_torchscript_round_trip(option: str, tmp_path: Path) -> None:
    module = build(option)
    paths = export_model(save_ckpt(tmp_path / "m.ckpt", module), tmp_path, "torchscript")
    assert paths[0].name == "model.pt"
    assert json.loads(paths[1].read_text())["format"] == "torchscript"
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"`torch\.jit\.load` is deprecated")
        loaded = torch.jit.load(io.BytesIO(paths[0].read_bytes()))
    for x in (windows(7), windows(3, 61)):  # another batch and another window length
        with torch.inference_mode():
            got = loaded(torch.from_numpy(x)).double().numpy()
        assert np.abs(got - torch_forecast(module, x)).max() <= TOL


@pytest.mark.slow
@pytest.mark.parametrize("loss", ["quantile", "gaussian"])
def test_probabilistic_models_export_their_point_forecast(loss: str, tmp_path: Path) -> None:
    module = build("gru", f"model.loss={loss}")
    paths = export_model(save_ckpt(tmp_path / "m.ckpt", module), tmp_path)
    info = json.loads(paths[1].read_text())
    assert (info["loss"], info["forecast"]) == (loss, {"quantile": "median"}.get(loss, "mean"))
    x = windows(7)
    assert np.abs(run_onnx(paths[0], x) - torch_forecast(module, x)).max() <= TOL


@pytest.mark.slow
def test_dynamo_exporter_has_a_fixed_window(tmp_path: Path) -> None:
    module = build("seq2seq")
    paths = export_model(save_ckpt(tmp_path / "m.ckpt", module), tmp_path, "onnx", dynamo=True)
    assert json.loads(paths[1].read_text())["fixed_window"] is True
    x = windows(1000)
    for batch in BATCHES:
        assert np.abs(run_onnx(paths[0], x[:batch]) - torch_forecast(module, x[:batch])).max() < TOL
    with pytest.raises(ConfigError, match="window=growing"):
        OnnxForecaster(tmp_path).predict(x[:2, :, 0], 25, "growing")


# --- OnnxForecaster against load_forecaster --------------------------------------------------


def calibration(horizon: int, levels=(80.0, 95.0)) -> dict:
    widths = np.linspace(0.1, 0.5, len(levels) * horizon).reshape(len(levels), horizon)
    return {"method": "conformal", "levels": list(levels), "widths": widths.tolist(),
            "n_calibration": 40}  # fmt: skip


def assert_same(a: np.ndarray, b: np.ndarray) -> None:
    assert a.shape == b.shape and a.dtype == b.dtype
    np.testing.assert_allclose(a, b, rtol=0, atol=TOL)  # equal infinities (too few calibration
    # windows for a level) count as equal


def test_onnx_forecaster_matches_load_forecaster(tmp_path: Path) -> None:
    ckpt = save_ckpt(tmp_path / "m.ckpt", build("gru"), intervals=calibration(10))
    export_model(ckpt, tmp_path / "out")
    onnx, torch_side = OnnxForecaster(tmp_path / "out"), load_forecaster(ckpt, "cpu", "plain")
    x = windows(40)[..., 0]  # [N, T]: the 2-D form
    for ahead, window in [(10, "sliding"), (4, "sliding"), (37, "sliding"), (37, "growing")]:
        assert_same(onnx.predict(x, ahead, window), torch_side.predict(x, ahead, window))
    for levels in (None, [95.0]):
        p, b = onnx.predict_intervals(x, 6, levels)
        q, c = predict_intervals(torch_side, x, 6, levels)
        assert_same(p, q)
        assert_same(b, c)
        assert b.shape == (40, 6, 2 if levels is None else 1, 2)


def file_checkpoint(tmp_path: Path, frame: pd.DataFrame, n_steps: int = 20) -> Path:
    """A checkpoint as ``train.py`` writes it for ``data=csv`` (target ``value``, time
    ``date``): the module, the DataModule's settings and its fitted scaler, intervals."""
    module = ForecastModule(net="gru", hidden=[8], n_steps=n_steps, horizon=5)
    dm = FileDataModule(path="sine.csv", target="value", time="date", n_steps=n_steps, horizon=5)
    scaler = Scaler("standard").fit(frame[["value"]].to_numpy()[:200])
    state = {"scaler": scaler.to_dict(), "columns": ["value"]}
    return save_ckpt(
        tmp_path / "file.ckpt",
        module,
        datamodule_hyper_parameters=dict(dm.hparams),
        FileDataModule=state,
        intervals=calibration(5),
    )


def test_file_model_scaling_and_timestamps_match_forecast_table(tmp_path: Path) -> None:
    frame = example_frame(rows=300)
    ckpt = file_checkpoint(tmp_path, frame)
    export_model(ckpt, tmp_path / "out")
    onnx, torch_side = OnnxForecaster(tmp_path / "out"), load_forecaster(ckpt, "cpu")
    rows, times = frame[["value"]].to_numpy(), pd.to_datetime(frame["date"]).to_numpy()
    for ahead, levels in [(5, [80.0, 95.0]), (3, [95.0]), (12, [])]:
        got = onnx.forecast_rows(rows, ahead, levels=levels, times=times)
        want = torch_side.forecast_table(frame, ahead, levels=levels)
        assert list(got) == list(want.columns)
        np.testing.assert_array_equal(got["date"], want["date"].to_numpy())
        for column in want.columns.drop(["step", "date"]):
            np.testing.assert_allclose(got[column], want[column], rtol=0, atol=TOL)


def test_torch_free_import() -> None:
    code = (
        "import sys, seqforecast.onnx; "
        "print(sorted(m for m in ('torch', 'lightning', 'pandas') if m in sys.modules))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


# --- bad input: one clear line ---------------------------------------------------------------


def test_bad_inputs_are_refused_in_one_line(tmp_path: Path) -> None:
    ckpt = save_ckpt(tmp_path / "m.ckpt", build("gru"), intervals=calibration(10))
    with pytest.raises(ConfigError, match=r"format must be one of \['onnx', 'torchscript'\]"):
        export_model(ckpt, tmp_path, "tflite")
    with pytest.raises(InputError, match="checkpoint not found"):
        export_model(tmp_path / "missing.ckpt", tmp_path)
    export_model(ckpt, tmp_path)
    onnx, x = OnnxForecaster(tmp_path / "model.onnx"), windows(3)
    cases = [
        (lambda: onnx.predict(x[:, :40]), InputError, r"shape \(3, 40, 1\); .* \[n_series, 50\]"),
        (lambda: onnx.predict(np.full((2, 50), np.nan)), InputError, "window 0 holds NaN"),
        (lambda: onnx.predict(x, 0), ConfigError, "ahead must be an integer >= 1, got 0"),
        (lambda: onnx.predict(x, 20, "random"), ConfigError, "window must be one of"),
        (lambda: onnx.predict_intervals(x, 20), ConfigError, "ahead=20 is iterative"),
        (lambda: onnx.predict_intervals(x, 5, [90]), ConfigError, r"levels=\[80.0, 95.0\]"),
        (lambda: onnx.forecast_rows(x[0]), InputError, "not trained on a file"),
    ]
    for call, error, message in cases:
        with pytest.raises(error, match=message):
            call()
    (tmp_path / "model.json").write_text("{}")
    with pytest.raises(InputError, match="not a seqforecast export sidecar"):
        OnnxForecaster(tmp_path)


# --- trained checkpoints, through train.py and the CLI ----------------------------------------


@pytest.fixture(scope="module")
def sine_run(tmp_path_factory) -> Path:
    """A ``seq2seq`` checkpoint trained one epoch on the tiny generated data (with intervals)."""
    out = tmp_path_factory.mktemp("seq2seq")
    train(compose_cfg(out, "model=seq2seq", "trainer.max_epochs=1"))
    return out / "checkpoints" / "best.ckpt"


@pytest.mark.slow
def test_cli_export_of_a_trained_model_matches_load_forecaster(sine_run, tmp_path) -> None:
    proc = run_script(
        "export.py", f"ckpt_path={sine_run}", f"hydra.run.dir={tmp_path}", cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "exported: rnn (seq2seq, n_steps=50, horizon=10) as onnx" in proc.stdout
    onnx, torch_side = OnnxForecaster(tmp_path), load_forecaster(sine_run, "cpu")
    x, _, _ = torch_side.generated_data("test")
    for ahead, window in [(10, "sliding"), (25, "sliding"), (25, "growing")]:
        assert_same(onnx.predict(x, ahead, window), torch_side.predict(x, ahead, window))
    assert onnx.levels == torch_side.levels == [80.0, 95.0]
    p, b = onnx.predict_intervals(x)
    q, c = predict_intervals(torch_side, x)
    assert_same(p, q)
    assert_same(b, c)


@pytest.mark.slow
def test_cli_bad_input_exits_2(sine_run, tmp_path, run_main) -> None:
    for args, message in [
        ([f"ckpt_path={sine_run}", "format=tflite"], "error: format must be one of"),
        ([f"ckpt_path={tmp_path / 'none.ckpt'}"], "error: checkpoint not found"),
        ([], "error: ckpt_path is required"),
        ([f"ckpt_path={sine_run}", "format=torchscript", "dynamo=true"], "needs format=onnx"),
    ]:
        proc = run_main("export.py", *args, f"hydra.run.dir={tmp_path}", cwd=tmp_path)
        assert proc.returncode == 2 and message in proc.stderr, proc.stderr[-1000:]
        assert len(proc.stderr.strip().splitlines()) == 1


@pytest.mark.slow
def test_trained_file_model_matches_forecast_table(tmp_path: Path) -> None:
    frame = example_frame(rows=400)
    frame.to_csv(tmp_path / "sine.csv", index=False)
    cfg = compose_cfg(
        tmp_path / "run", "model=seq2vec", "data=csv", f"data.path={tmp_path / 'sine.csv'}",
        "data.time=date", "n_steps=20", "trainer.max_epochs=1", "data.batch_size=64",
        "trainer.accelerator=cpu", "trainer.enable_model_summary=false",
        "trainer.log_every_n_steps=1", tiny=False,
    )  # fmt: skip
    train(cfg)
    ckpt = tmp_path / "run" / "checkpoints" / "best.ckpt"
    export_model(ckpt, tmp_path / "out")
    onnx, torch_side = OnnxForecaster(tmp_path / "out"), load_forecaster(ckpt, "cpu")
    assert onnx.info["features"] == ["value"] and onnx.info["data"]["time"] == "date"
    rows, times = frame[["value"]].to_numpy(), pd.to_datetime(frame["date"]).to_numpy()
    for ahead, levels in [(10, [80.0, 95.0]), (25, [])]:
        got = onnx.forecast_rows(rows, ahead, levels=levels, times=times)
        want = torch_side.forecast_table(frame, ahead, levels=levels)
        np.testing.assert_array_equal(got["date"], want["date"].to_numpy())
        for column in want.columns.drop(["step", "date"]):
            np.testing.assert_allclose(got[column], want[column], rtol=0, atol=TOL)

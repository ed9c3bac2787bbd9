"""Export (ONNX, TorchScript) and torch-free inference: the exported graphs against torch, and
``OnnxForecaster`` against ``load_forecaster`` on the same checkpoints."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
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
        q, c = torch_side.predict_intervals(x, 6, levels)
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


def test_forecast_rows_follow_calendar_months_as_forecast_table(tmp_path: Path) -> None:
    """One future_times for every front-end: month starts (irregular in days) go on as month
    starts, and the torch Forecaster's forecast_rows is the ONNX one's and forecast_table's."""
    frame = example_frame(rows=300)
    frame["date"] = pd.date_range("2000-01-01", periods=300, freq="MS").strftime("%Y-%m-%d")
    ckpt = file_checkpoint(tmp_path, frame)
    export_model(ckpt, tmp_path / "out")
    onnx, torch_side = OnnxForecaster(tmp_path / "out"), load_forecaster(ckpt, "cpu")
    center, scale = onnx.scaling()  # global scaling: no series to name
    np.testing.assert_array_equal(center, torch_side.scaler.center)
    np.testing.assert_array_equal(scale, torch_side.scaler.scale)
    rows, times = frame[["value"]].to_numpy(), pd.to_datetime(frame["date"]).to_numpy()
    for ahead, levels in [(5, [80.0]), (8, [])]:
        months = pd.date_range("2025-01-01", periods=ahead, freq="MS").to_numpy()  # after 2024-12
        want = torch_side.forecast_table(frame, ahead, levels=levels)
        np.testing.assert_array_equal(want["date"].to_numpy(), months)
        for forecaster in (onnx, torch_side):
            got = forecaster.forecast_rows(rows, ahead, levels=levels, times=times)
            assert list(got) == list(want.columns)
            np.testing.assert_array_equal(got["date"], months)
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


def test_a_second_export_is_refused_unless_overwrite(tmp_path: Path) -> None:
    ckpt = save_ckpt(tmp_path / "m.ckpt", build("gru"), intervals=calibration(10))
    out = tmp_path / "out"
    export_model(ckpt, out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    for fmt in ("onnx", "torchscript"):
        with pytest.raises(
            ConfigError, match=r"already holds an export \(model.onnx, model.json\)"
        ):
            export_model(ckpt, out, fmt)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # nothing changed
    with pytest.raises(ConfigError, match="overwrite must be true or false, got 'yes'"):
        export_model(ckpt, out, overwrite="yes")
    paths = export_model(ckpt, out, "torchscript", overwrite=True)
    assert sorted(p.name for p in out.iterdir()) == ["model.json", "model.pt"]  # no orphan
    info = json.loads(paths[1].read_text())
    assert info["sha256"] == hashlib.sha256(paths[0].read_bytes()).hexdigest()
    export_model(ckpt, out, overwrite=True)
    assert sorted(p.name for p in out.iterdir()) == ["model.json", "model.onnx"]
    np.testing.assert_allclose(
        OnnxForecaster(out).predict(windows(3)), run_onnx(out / "model.onnx", windows(3))
    )


# --- tampered exports: one InputError line each ----------------------------------------------


@pytest.fixture(scope="module")
def exports(tmp_path_factory) -> dict[str, Path]:
    """Three exports of the GRU (n_steps 50, horizon 10, 80/95 % widths): ``base``, ``other``
    (other weights, same shapes) and ``short`` (horizon 5)."""
    root = tmp_path_factory.mktemp("exports")
    folders = {}
    for name, seed, horizon in (("base", 0, 10), ("other", 1, 10), ("short", 0, 5)):
        module = build("gru", f"horizon={horizon}")
        if seed:
            torch.manual_seed(seed)
            module = instantiate(compose_cfg(Path("unused"), "model=gru").model).eval()
        ckpt = save_ckpt(root / f"{name}.ckpt", module, intervals=calibration(horizon))
        export_model(ckpt, root / name)
        folders[name] = root / name
    return folders


def edit(**fields):
    def apply(info: dict, folder: Path, exports: dict) -> None:
        info.update(fields)

    return apply


def edit_in(key: str, **fields):
    def apply(info: dict, folder: Path, exports: dict) -> None:
        info[key] = {**(info[key] or {}), **fields}

    return apply


def swap_model(source: str, update_hash: bool = False):
    def apply(info: dict, folder: Path, exports: dict) -> None:
        data = (exports[source] / "model.onnx").read_bytes()
        (folder / "model.onnx").write_bytes(data)
        if update_hash:
            info["sha256"] = hashlib.sha256(data).hexdigest()

    return apply


def other_file(name: str, copy: bool = True):
    def apply(info: dict, folder: Path, exports: dict) -> None:
        if copy:
            (folder / name).write_bytes((exports["other"] / "model.onnx").read_bytes())
        info["file"] = name

    return apply


def garbage_model_of_an_old_export(info: dict, folder: Path, exports: dict) -> None:
    (folder / "model.onnx").write_bytes(b"not a model")
    del info["sha256"]


def link_out_of_an_old_export(info: dict, folder: Path, exports: dict) -> None:
    (folder / "linked.onnx").symlink_to(exports["other"] / "model.onnx")
    info["file"] = "linked.onnx"
    del info["sha256"]


def scaler(**fields):
    base = {"kind": "standard", "center": [0.5], "scale": [2.0]}
    return edit(data_state={"scaler": {**base, **fields}})


TAMPERED = {
    # answered wrongly before: now refused
    "horizon truncates the output": (edit(horizon=5), "output="),
    "file points to another export": (other_file("../other/model.onnx", copy=False), "file="),
    "file names another model": (other_file("other.onnx"), "SHA-256 differs"),
    "swapped model.onnx": (swap_model("other"), "SHA-256 differs"),
    "NaN width": (edit_in("intervals", widths=[[float("nan")] * 10, [0.2] * 10]), "is nan"),
    "negative width": (
        edit_in("intervals", widths=[[0.1] * 10, [-0.2] * 10]),
        r"\[1\]\[0\] is -0.2",
    ),
    "levels out of (0, 100)": (edit_in("intervals", levels=[1000, -5]), "intervals.levels="),
    # raw ValueError / TypeError / onnxruntime errors before
    "n_steps a string": (edit(n_steps="50"), 'n_steps="50" is not allowed'),
    "horizon zero": (edit(horizon=0), "horizon=0 is not allowed"),
    "n_features a bool": (edit(n_features=True), "n_features=true is not allowed"),
    "n_steps changed (dynamic time axis)": (edit(n_steps=30), "was exported with"),
    "n_features and input shape changed": (
        edit(n_features=2, input={"name": "x", "shape": ["batch", "time", 2], "dtype": "float32"}),
        "declares x",
    ),
    "input not an object": (edit(input="x"), 'input="x" is not allowed'),
    "input name not the graph's": (edit_in("input", name="y"), "declares x"),
    "input dtype": (edit_in("input", dtype="float64"), "input="),
    "output rank": (edit_in("output", shape=["batch"]), "output="),
    "target unknown": (edit(target="sideways"), "target="),
    "net not a name": (edit(net=5), "net=5"),
    "fixed_window a string": (edit(fixed_window="false"), "fixed_window="),
    "fixed_window flipped": (
        edit(fixed_window=True, input={"name": "x", "shape": ["batch", 50, 1], "dtype": "float32"}),
        "was exported with",
    ),
    "format": (edit(format="torchscript"), "format='torchscript' export"),
    "file not a name": (edit(file=5), "file=5"),
    "file missing": (other_file("gone.onnx", copy=False), "model file not found"),
    "file links out of the folder": (link_out_of_an_old_export, "outside the export's folder"),
    "sha256 not hex": (edit(sha256="xyz"), "sha256="),
    "swapped model of another horizon, hash updated": (swap_model("short", True), "declares x"),
    "garbage model of an old export": (garbage_model_of_an_old_export, "onnxruntime can load"),
    "widths shape": (edit_in("intervals", widths=[[0.1] * 10]), r"shape \[1, 10\]"),
    "widths ragged": (edit_in("intervals", widths=[[0.1] * 10, [0.1]]), "rectangular"),
    "widths strings": (edit_in("intervals", widths=[["0.1"] * 10] * 2), "list of numbers"),
    "levels repeated": (edit_in("intervals", levels=[80, 80]), "distinct"),
    "levels a string": (edit_in("intervals", levels="80"), "intervals.levels="),
    "intervals method": (edit_in("intervals", method="cqr"), "method: conformal"),
    "features count": (edit(features=["a", "b"]), "features="),
    "scaler NaN center": (scaler(center=[float("nan")]), "non-finite center"),
    "scaler zero scale": (scaler(scale=[0.0]), "scale <= 0"),
    "scaler shape": (scaler(center=[0.1, 0.2], scale=[1.0, 1.0]), r"center \[2\]"),
    "scaler panel without ids": (scaler(center=[[0.1]], scale=[[1.0]]), "data_state.series="),
    "missing key": (lambda info, folder, exports: info.pop("horizon"), r"no keys \['horizon'\]"),
}


@pytest.mark.parametrize("case", list(TAMPERED))
def test_tampered_exports_are_refused_in_one_line(case: str, exports, tmp_path: Path) -> None:
    folder = tmp_path / "export"
    shutil.copytree(exports["base"], folder)
    info = json.loads((folder / "model.json").read_text())
    tamper, message = TAMPERED[case]
    tamper(info, folder, exports)
    (folder / "model.json").write_text(json.dumps(info))
    with pytest.raises(InputError, match=message) as err:
        OnnxForecaster(folder)
    assert "\n" not in str(err.value)


def test_sidecars_that_are_not_json_objects(exports, tmp_path: Path) -> None:
    shutil.copytree(exports["base"], tmp_path / "export")
    for text, message in [
        ("[1, 2]", "not a seqforecast export sidecar"),
        ("{", "not readable JSON"),
    ]:
        (tmp_path / "export" / "model.json").write_text(text)
        with pytest.raises(InputError, match=message):
            OnnxForecaster(tmp_path / "export")


def test_an_export_from_before_the_hash_still_loads(exports, tmp_path: Path) -> None:
    """No ``sha256`` in the sidecar, no metadata entry in the model: loaded unchecked."""
    import onnx

    folder = tmp_path / "old"
    shutil.copytree(exports["base"], folder)
    info = json.loads((folder / "model.json").read_text())
    del info["sha256"]
    (folder / "model.json").write_text(json.dumps(info))
    proto = onnx.load(folder / "model.onnx")
    del proto.metadata_props[:]
    onnx.save(proto, folder / "model.onnx")
    x = windows(4)
    assert_same(
        OnnxForecaster(folder).predict(x, 23), OnnxForecaster(exports["base"]).predict(x, 23)
    )
    assert OnnxForecaster(folder).session.get_modelmeta().custom_metadata_map == {}


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
    q, c = torch_side.predict_intervals(x)
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
    first = run_main(
        "export.py", f"ckpt_path={sine_run}", f"hydra.run.dir={tmp_path}", cwd=tmp_path
    )
    assert first.returncode == 0, first.stderr[-1000:]
    model = (tmp_path / "model.onnx").read_bytes()
    again = run_main(
        "export.py", f"ckpt_path={sine_run}", "format=torchscript", f"hydra.run.dir={tmp_path}",
        cwd=tmp_path,
    )  # fmt: skip
    assert again.returncode == 2 and "already holds an export" in again.stderr
    assert len(again.stderr.strip().splitlines()) == 1 and not (tmp_path / "model.pt").exists()
    assert (tmp_path / "model.onnx").read_bytes() == model
    replaced = run_main(
        "export.py", f"ckpt_path={sine_run}", "format=torchscript", "overwrite=true",
        f"hydra.run.dir={tmp_path}", cwd=tmp_path,
    )  # fmt: skip
    assert replaced.returncode == 0 and not (tmp_path / "model.onnx").exists()


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

"""Prediction from checkpoints: round trips, iterative forecasts, inputs, scores, bad input."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import CONF, compose_cfg, scaled_tol
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from seqforecast import load_forecaster
from seqforecast.data import two_sine_series
from seqforecast.errors import ConfigError, InputError
from seqforecast.module import ForecastModule
from seqforecast.predict import NpyRows, predict
from seqforecast.train import train

N_SERIES, SPLIT = 96, (64, 16, 16)  # the tiny data of conftest.TINY


def predict_cfg(output_dir: Path, *overrides: str) -> DictConfig:
    """The real ``conf/predict.yaml`` composed with ``overrides``."""
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(
            "predict", overrides=[f"output_dir={output_dir}", "progress=false", *overrides]
        )


def trained(tmp_path_factory: pytest.TempPathFactory, option: str) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp(option)
    metrics = train(compose_cfg(out, f"model={option}", "trainer.max_epochs=1"))
    return out / "checkpoints" / "best.ckpt", metrics


@pytest.fixture(scope="module")
def one_step(tmp_path_factory) -> tuple[Path, dict]:
    """A 1-step ``deep_rnn_dense`` checkpoint trained one epoch on tiny data."""
    return trained(tmp_path_factory, "deep_rnn_dense")


@pytest.fixture(scope="module")
def seq2seq(tmp_path_factory) -> tuple[Path, dict]:
    """A ``seq2seq`` checkpoint (k = 10 outputs per step) trained one epoch on tiny data."""
    return trained(tmp_path_factory, "seq2seq")


def save_ckpt(path: Path, module: ForecastModule, **extra: object) -> Path:
    """A checkpoint as another script might write it: hparams and weights, nothing else."""
    torch.save(
        {"hyper_parameters": dict(module.hparams), "state_dict": module.state_dict(), **extra}, path
    )
    return path


def book_series(horizon: int, split: str) -> np.ndarray:
    """The tiny data's series of one split, cut by hand: ``[n, 50 + horizon]``."""
    series = two_sine_series(N_SERIES, 50 + horizon, seed=42)[..., 0]
    lo = {"train": 0, "val": SPLIT[0], "test": SPLIT[0] + SPLIT[1]}[split]
    return series[lo : lo + SPLIT[("train", "val", "test").index(split)]]


# --- round trips ---------------------------------------------------------------------------


def test_cli_and_python_api_give_identical_numbers(seq2seq, tmp_path, run_main) -> None:
    ckpt, train_metrics = seq2seq
    run_dir = tmp_path / "run"
    proc = run_main("predict.py", f"ckpt_path={ckpt}", f"hydra.run.dir={run_dir}", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "direct (10-step model, last time step's outputs)" in proc.stdout
    assert "predict:" in proc.stderr  # the progress bar
    cli = np.load(run_dir / "predictions.npy")
    csv = np.loadtxt(run_dir / "predictions.csv", delimiter=",", dtype=np.float32)

    f = load_forecaster(ckpt, device="cpu")
    x, _, settings = f.generated_data("test")
    api = f.predict(x)
    assert api.shape == cli.shape == (SPLIT[2], 10)
    np.testing.assert_array_equal(api, cli)
    np.testing.assert_array_equal(csv, cli)  # %.9g keeps every float32 bit
    # The direct forecast is the last time step's k outputs, as train.py scored it.
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert settings["n_series"] == N_SERIES and metrics["data"]["split"] == list(SPLIT)
    assert metrics["mse"] == pytest.approx(train_metrics["test/mse_last"], rel=1e-5)
    assert metrics["mse_all_steps"] == pytest.approx(train_metrics["test/mse"], rel=1e-5)
    steps = np.load(run_dir / "squared_errors_steps.npy")
    assert steps.shape == (SPLIT[2], 50, 10)
    want = np.load(run_dir / "squared_errors.npy")  # near 0 where a forecast is good
    np.testing.assert_allclose(steps[:, -1], want, **scaled_tol(want, 1e-6))
    assert (run_dir / "forecast.png").read_bytes()[:4] == b"\x89PNG"


def test_checkpoint_stores_data_settings_and_no_device(one_step) -> None:
    raw = torch.load(one_step[0], weights_only=True)
    data = raw["datamodule_hyper_parameters"]
    assert data["n_series"] == N_SERIES and list(data["split"]) == list(SPLIT)
    stored = {**raw["hyper_parameters"], **data}
    assert not any("device" in k or "accelerator" in k for k in stored)


@pytest.mark.slow
def test_import_stays_light_until_the_api_is_used() -> None:
    code = (
        "import sys, seqforecast; assert 'torch' not in sys.modules; "
        "seqforecast.load_forecaster; assert 'torch' in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


# --- forecasts -----------------------------------------------------------------------------


@pytest.mark.parametrize("window", ["sliding", "growing"])
def test_iterative_forecast_equals_a_hand_written_loop(one_step, window) -> None:
    f = load_forecaster(one_step[0], device="cpu")
    x = book_series(1, "val")[:, :50]  # [16, 50]
    got = f.predict(x, ahead=7, window=window, batch_size=5)  # batches of 5, 5, 5, 1
    history = torch.from_numpy(x[..., None])
    with torch.no_grad():
        for _ in range(7):
            inputs = history[:, -50:] if window == "sliding" else history
            history = torch.cat([history, f.module(inputs)[:, None]], dim=1)
    assert got.shape == (16, 7)
    want = history[:, 50:, 0].numpy()
    np.testing.assert_allclose(got, want, **scaled_tol(want, 1e-5))


def test_seq2seq_iterates_on_its_last_step_outputs(seq2seq) -> None:
    f = load_forecaster(seq2seq[0], device="cpu")
    x = book_series(10, "test")[:, :50]
    got = f.predict(x, ahead=25)  # rounds of 10, 10, 10 -> first 25
    history = torch.from_numpy(x[..., None])
    with torch.no_grad():
        for _ in range(3):
            y = f.module(history[:, -50:])[:, -1]  # [B, 50, 10] -> last step [B, 10]
            history = torch.cat([history, y[..., None]], dim=1)
    want = history[:, 50:75, 0].numpy()
    np.testing.assert_allclose(got, want, **scaled_tol(want, 1e-5))
    assert "3 rounds of 10" in f.method(25)
    np.testing.assert_array_equal(f.predict(x, ahead=4), f.predict(x)[:, :4])


def test_per_horizon_mse_against_numpy(one_step, tmp_path) -> None:
    # ahead=3 on a 1-step model: the val series are regenerated with 3 target steps.
    predict(predict_cfg(tmp_path, f"ckpt_path={one_step[0]}", "ahead=3", "split=val"))
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    series = book_series(3, "val")  # [16, 53]
    pred = np.load(tmp_path / "predictions.npy")
    errors = (pred.astype(np.float64) - series[:, 50:]) ** 2  # [16, 3]
    assert metrics["data"]["horizon"] == 3 and metrics["window"] == "sliding"
    assert "iterative, sliding window (3 rounds of 1" in metrics["method"]
    assert metrics["mse"] == pytest.approx(errors.mean(), rel=1e-6)
    np.testing.assert_allclose(metrics["mse_per_horizon"], errors.mean(axis=0), rtol=1e-6)
    np.testing.assert_allclose(
        np.load(tmp_path / "squared_errors.npy"), errors, **scaled_tol(errors, 1e-5)
    )
    # The same forecast from the Python API on the hand-cut windows.
    f = load_forecaster(one_step[0], device="cpu")
    np.testing.assert_array_equal(f.predict(series[:, :50], ahead=3), pred)


def test_data_overrides_score_seq2seq_on_next_targets(seq2seq, tmp_path) -> None:
    cfg = predict_cfg(tmp_path, f"ckpt_path={seq2seq[0]}", "data.target=next", "plot=0")
    summary = predict(cfg)
    series = book_series(10, "test")
    pred = np.load(tmp_path / "predictions.npy")
    assert summary["mse"] == pytest.approx(((pred - series[:, 50:]) ** 2).mean(), rel=1e-5)
    assert "mse_all_steps" not in summary and not (tmp_path / "forecast.png").exists()


@pytest.mark.parametrize("form", ["npy_2d", "npy_3d", "npy_fortran", "csv"])
def test_npy_and_csv_inputs(one_step, tmp_path, form) -> None:
    x = book_series(1, "test")[:, :50]  # [16, 50]
    path = tmp_path / ("x.csv" if form == "csv" else "x.npy")
    if form == "csv":
        np.savetxt(path, x, delimiter=",", fmt="%.9g")
    elif form == "npy_3d":
        np.save(path, x[..., None])
    else:
        np.save(path, np.asfortranarray(x) if form == "npy_fortran" else x)
    out = tmp_path / "run"
    summary = predict(predict_cfg(out, f"ckpt_path={one_step[0]}", f"input={path}", "ahead=5"))
    expected = load_forecaster(one_step[0], device="cpu").predict(x, ahead=5)
    np.testing.assert_array_equal(np.load(out / "predictions.npy"), expected)
    assert summary["source"] == str(path) and summary["n_series"] == 16
    assert not (out / "metrics.json").exists()  # no targets, no scores
    assert (out / "forecast.png").exists()


def test_npy_rows_stream_the_file(tmp_path) -> None:
    x = np.arange(7 * 5 * 1, dtype=np.float64).reshape(7, 5, 1)
    np.save(tmp_path / "x.npy", x)
    rows = NpyRows(tmp_path / "x.npy")
    assert rows.shape == (7, 5, 1) and len(rows) == 7
    np.testing.assert_array_equal(rows[2:5], x[2:5])
    np.testing.assert_array_equal(rows[6:100], x[6:])


def test_batch_size_does_not_change_predictions(one_step) -> None:
    f = load_forecaster(one_step[0], device="cpu")
    x = book_series(1, "train")[:, :50]
    # torch's matmuls round differently for other batch shapes: a few float32 ulps of O(1)
    # outputs (measured up to 3.6e-7 over three iterative steps), fed back and compounded.
    want = f.predict(x, ahead=3)
    np.testing.assert_allclose(f.predict(x, ahead=3, batch_size=3), want, **scaled_tol(want, 1e-5))


def test_checkpoint_saved_on_cuda_predicts_on_cpu(one_step, tmp_path, monkeypatch) -> None:
    raw = torch.load(one_step[0], weights_only=True)
    # Tag every storage as CUDA, as torch.save does on a GPU machine.
    with monkeypatch.context() as m:
        m.setattr(torch.serialization, "location_tag", lambda storage: "cuda:0")
        torch.save(raw, tmp_path / "cuda.ckpt")
    if not torch.cuda.is_available():  # (torch < 2.5 raises it as an UnpicklingError)
        with pytest.raises((RuntimeError, pickle.UnpicklingError), match="CUDA"):
            torch.load(tmp_path / "cuda.ckpt", weights_only=True)
    x = book_series(1, "test")[:, :50]
    f = load_forecaster(tmp_path / "cuda.ckpt", device="cpu")
    assert next(f.module.parameters()).device.type == "cpu"
    np.testing.assert_array_equal(f.predict(x), load_forecaster(one_step[0], "cpu").predict(x))


@pytest.mark.cuda
def test_cuda_and_cpu_predictions_agree(tmp_path) -> None:
    metrics = train(compose_cfg(tmp_path, "trainer.accelerator=gpu", "trainer.max_epochs=1"))
    x = book_series(1, "test")[:, :50]
    on_cpu = load_forecaster(metrics["best_ckpt"], device="cpu")
    on_gpu = load_forecaster(metrics["best_ckpt"], device="cuda")
    assert next(on_gpu.module.parameters()).is_cuda
    np.testing.assert_allclose(on_gpu.predict(x, ahead=5), on_cpu.predict(x, ahead=5), atol=1e-5)


# --- bad input -----------------------------------------------------------------------------


class Payload:
    """Unpickling this creates ``marker``: code that runs when a checkpoint is loaded unsafely."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.mark.parametrize("container", ["torch", "pickle"])
def test_malicious_checkpoint_is_refused_not_run(one_step, tmp_path, container) -> None:
    marker = tmp_path / "pwned"
    raw = torch.load(one_step[0], weights_only=True)
    path = tmp_path / "evil.ckpt"
    if container == "torch":  # a real checkpoint with an object slipped in
        torch.save({**raw, "callbacks": Payload(marker)}, path)
    else:  # a bare pickle (torch's legacy format) whose first object is the payload
        path.write_bytes(pickle.dumps({"callbacks": Payload(marker), "state_dict": {}}, protocol=2))
    with pytest.raises(InputError, match=r"holds non-weight objects \(pickled .*open.*refused"):
        load_forecaster(path, device="cpu")
    assert not marker.exists()
    if container == "torch":  # the payload is real: an unsafe load would have run it
        torch.load(path, weights_only=False)
        assert marker.exists()


def test_cli_refuses_malicious_checkpoint_in_one_line(one_step, tmp_path, run_main) -> None:
    raw = torch.load(one_step[0], weights_only=True)
    raw["callbacks"] = Payload(tmp_path / "pwned")
    torch.save(raw, tmp_path / "evil.ckpt")
    proc = run_main(
        "predict.py",
        f"ckpt_path={tmp_path / 'evil.ckpt'}",
        f"hydra.run.dir={tmp_path / 'r'}",
        cwd=tmp_path,
    )
    assert proc.returncode == 2
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error: checkpoint") and "refused" in last
    assert not (tmp_path / "pwned").exists()


def test_cli_without_ckpt_path_says_it_is_required(tmp_path, run_main) -> None:
    proc = run_main("predict.py", f"hydra.run.dir={tmp_path / 'r'}", cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].startswith("error: ckpt_path is required")


def _truncated(src: Path, dst: Path) -> Path:
    dst.write_bytes(src.read_bytes()[: src.stat().st_size // 2])
    return dst


def _text(dst: Path) -> Path:
    dst.write_text("epoch,loss\n1,0.5\n")
    return dst


def _other_program(dst: Path) -> Path:
    torch.save({"model": {"w": torch.zeros(3)}, "epoch": 3}, dst)
    return dst


def _unknown_net(dst: Path) -> Path:
    module = ForecastModule(net="naive")
    torch.save(
        {"hyper_parameters": {**module.hparams, "net": "transformer"}, "state_dict": {}}, dst
    )
    return dst


def _foreign_hparams(dst: Path) -> Path:
    torch.save({"hyper_parameters": {"d_model": 64}, "state_dict": {}}, dst)
    return dst


def _wrong_weights(dst: Path) -> Path:
    module = ForecastModule(net="rnn", hidden=[20, 20])
    state = {**module.state_dict(), "net.head.linear.weight": torch.zeros(3, 20)}
    torch.save({"hyper_parameters": dict(module.hparams), "state_dict": state}, dst)
    return dst


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda src, d: d / "absent.ckpt", r"checkpoint not found: .*absent\.ckpt"),
        (lambda src, d: _truncated(src, d / "half.ckpt"), "truncated or not a torch checkpoint"),
        (lambda src, d: _text(d / "log.ckpt"), "truncated or not a torch checkpoint"),
        (lambda src, d: _other_program(d / "o.ckpt"), r"expected a dict with 'hyper_parameters'"),
        (lambda src, d: _unknown_net(d / "n.ckpt"), r"no buildable model: model.net='transformer'"),
        (lambda src, d: _foreign_hparams(d / "f.ckpt"), r"keys \['d_model'\]; expected only"),
        (
            lambda src, d: _wrong_weights(d / "w.ckpt"),
            r"w\.ckpt: its hyper_parameters do not match its state_dict: net.head.linear.weight "
            r"is \(3, 20\) in the state_dict but \(1, 20\) by the hyper_parameters",
        ),
    ],
    ids=["missing", "truncated", "text", "other_program", "unknown_net", "foreign", "weights"],
)
def test_bad_checkpoints(one_step, tmp_path, make, match) -> None:
    path = make(one_step[0], tmp_path)
    with pytest.raises(InputError, match=match) as err:
        load_forecaster(path, device="cpu")
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(
    ("array", "suffix", "match"),
    [
        (np.zeros((4, 40)), ".npy", r"shape \(4, 40\); this model expects \[n_series, 50\]"),
        (np.zeros((4, 50, 2)), ".npy", r"shape \(4, 50, 2\); .*n_features=1"),
        (np.zeros(50), ".npy", r"shape \(50,\)"),
        (np.zeros((0, 50)), ".npy", r"shape \(0, 50\)"),
        (np.array([["a"] * 50]), ".npy", "dtype <U1; expected numbers"),
        (np.full((3, 50), np.nan), ".npy", "window 0 holds NaN"),
        (np.zeros((3, 40)), ".csv", r"shape \(3, 40\)"),
        (np.zeros((3, 50)), ".txt", r"must be one of \['.npy', '.csv'\]"),
    ],
)
def test_bad_inputs(one_step, tmp_path, array, suffix, match) -> None:
    path = tmp_path / f"x{suffix}"
    if suffix == ".npy":
        np.save(path, array)
    else:
        np.savetxt(path, array, delimiter=",")
    cfg = predict_cfg(tmp_path / "run", f"ckpt_path={one_step[0]}", f"input={path}")
    with pytest.raises(InputError, match=match):
        predict(cfg)
    assert not (tmp_path / "run" / "predictions.npy").exists()


def test_unreadable_input_files(one_step, tmp_path) -> None:
    (tmp_path / "x.csv").write_text("time,value\n0,0.1\n")
    (tmp_path / "x.npy").write_bytes(b"\x93NUMPY garbage")
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    for name, match in [
        ("x.csv", "not a CSV of numbers"),
        ("x.npy", "not a readable .npy"),
        ("obj.npy", "not a readable .npy"),
        ("absent.npy", "input not found"),
    ]:
        cfg = predict_cfg(tmp_path / "run", f"ckpt_path={one_step[0]}", f"input={tmp_path / name}")
        with pytest.raises(InputError, match=match):
            predict(cfg)


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        (["ahead=0"], "ahead must be an integer >= 1"),
        (["window=expanding"], r"window must be one of \['sliding', 'growing'\]"),
        (["device=tpu"], "device must be one of"),
        (["batch_size=0"], "batch_size must be a positive integer"),
        (["split=holdout"], "split must be one of"),
        (["plot=-1"], "plot must be an integer >= 0"),
        (["names.plot=../forecast.png"], "names.plot must be a file name inside the run folder"),
        (["data.n_series=-5"], r"data.n_series=-5 is not allowed: expected an integer >= 1"),
        (["ahead=100000"], r"^ahead=100000 exceeds predict's max_ahead=1000; forecast fewer"),
        (["ahead=40", "max_ahead=30"], "ahead=40 exceeds predict's max_ahead=30"),
        (["max_ahead=0"], r"max_ahead=0 is not allowed: expected an integer >= 1"),
    ],
)
def test_bad_options(one_step, tmp_path, overrides, match) -> None:
    with pytest.raises(ConfigError, match=match):
        predict(predict_cfg(tmp_path, f"ckpt_path={one_step[0]}", *overrides))


@pytest.mark.skipif(torch.cuda.is_available(), reason="this host has a GPU")
def test_cuda_device_without_gpu_is_refused(one_step, tmp_path) -> None:
    with pytest.raises(ConfigError, match="device=cuda but no CUDA GPU"):
        predict(predict_cfg(tmp_path, f"ckpt_path={one_step[0]}", "device=cuda"))


def test_growing_window_needs_a_net_that_takes_any_length(tmp_path) -> None:
    ckpt = save_ckpt(tmp_path / "linear.ckpt", ForecastModule(net="linear"))
    f = load_forecaster(ckpt, device="cpu")
    x = np.zeros((2, 50), dtype=np.float32)
    assert f.predict(x, ahead=3).shape == (2, 3)  # sliding works
    with pytest.raises(ConfigError, match="window=growing .* linear model has a fixed window"):
        f.predict(x, ahead=3, window="growing")


def test_checkpoint_without_data_settings_needs_an_input(tmp_path) -> None:
    ckpt = save_ckpt(tmp_path / "rnn.ckpt", ForecastModule(net="rnn", hidden=[4]))
    with pytest.raises(InputError, match="holds no data settings .* pass input="):
        predict(predict_cfg(tmp_path / "run", f"ckpt_path={ckpt}"))

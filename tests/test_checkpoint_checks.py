"""Crafted checkpoints are refused in one line by the one loader, whoever loads them: tensors
whose storage is smaller than their shape (stride-0 expansion), non-float or non-finite
weights, and stored interval widths that would give NaN or inverted bounds."""

from __future__ import annotations

import resource
from pathlib import Path

import numpy as np
import pytest
import torch

from seqforecast import load_forecaster, memory
from seqforecast.errors import ConfigError, InputError
from seqforecast.export import export_model
from seqforecast.intervals import CHECKPOINT_KEY, Calibration
from seqforecast.module import ForecastModule
from seqforecast.predict.checkpoint import check_state_dict
from seqforecast.resume import resume_checkpoint

MB = 2**20
HPARAMS = {"net": "rnn", "hidden": [8, 8], "horizon": 3}


def max_rss() -> int:
    """Peak resident memory of this process so far, in bytes (Linux reports kB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def widths(method: str = "conformal", values: list | None = None) -> dict:
    """A stored calibration at levels 80 and 95 for a 3-step model."""
    w = np.array(values if values is not None else [[0.1, 0.2, 0.3], [0.2, 0.3, 0.4]])
    return Calibration(method, [80.0, 95.0], w, 100).to_dict()


def save(path: Path, state: dict | None = None, calibration: dict | None = None, **hparams):
    """A checkpoint of a tiny RNN (or ``state`` under those hparams), as train.py lays it out."""
    hp = {**HPARAMS, **hparams}
    module = ForecastModule(**hp)
    ckpt = {"hyper_parameters": dict(module.hparams), "state_dict": state or module.state_dict()}
    if calibration is not None:
        ckpt[CHECKPOINT_KEY] = calibration
    torch.save(ckpt, path)
    return module


def tampered(path: Path, key: str, value: torch.Tensor) -> Path:
    """A tiny RNN checkpoint with state_dict[key] replaced by ``value``."""
    state = ForecastModule(**HPARAMS).state_dict()
    state[key] = value
    save(path, state)
    return path


def one_line(err: pytest.ExceptionInfo, path: Path) -> str:
    message = str(err.value)
    assert "\n" not in message and message.startswith(f"checkpoint {path}")
    return message


def test_plain_weights_load_and_forecast_as_saved(tmp_path) -> None:
    path = tmp_path / "ok.ckpt"
    module = save(path, calibration=widths()).eval()
    f = load_forecaster(path, device="cpu", layers="plain")
    x = torch.randn(4, 50, 1)
    with torch.no_grad():
        expected = module(x).numpy()
    np.testing.assert_allclose(f.predict(x.numpy()[..., 0]), expected, atol=1e-6)


def test_weights_viewing_one_shared_buffer_still_load(tmp_path) -> None:
    """cuDNN keeps an RNN's weights as views of one flat buffer, so a CUDA-trained state_dict
    holds tensors whose storage is larger than each of them: real weights, loaded."""
    module = ForecastModule(**HPARAMS).eval()
    state = module.state_dict()
    flat = torch.cat([t.flatten() for t in state.values()])
    views, start = {}, 0
    for k, t in state.items():
        views[k] = flat[start : start + t.numel()].view(t.shape)
        start += t.numel()
    path = tmp_path / "flat.ckpt"
    save(path, views)
    raw = torch.load(path, weights_only=True)["state_dict"]
    assert len({t.untyped_storage().data_ptr() for t in raw.values()}) == 1
    f = load_forecaster(path, device="cpu", layers="plain")
    x = torch.randn(2, 50, 1)
    with torch.no_grad():
        expected = module(x).numpy()
    np.testing.assert_allclose(f.predict(x.numpy()[..., 0]), expected, atol=1e-6)


def test_stride_0_weights_declaring_a_huge_network_are_refused_unallocated(tmp_path) -> None:
    """A file of a few kB declares hidden=[200000, 20] through expanded (stride-0) tensors:
    160 GB once built. The storage check refuses it before any module is made."""
    with torch.device("meta"):
        shapes = {
            k: v.shape
            for k, v in ForecastModule(**{**HPARAMS, "hidden": [200_000, 20]}).state_dict().items()
        }
    state = {k: torch.zeros(1).expand(s) for k, s in shapes.items()}
    path = tmp_path / "expanded.ckpt"
    save(path, state, hidden=[8, 8])  # the hparams are replaced below
    raw = torch.load(path, weights_only=True)
    raw["hyper_parameters"]["hidden"] = [200_000, 20]
    torch.save(raw, path)
    assert path.stat().st_size < 100_000
    before = max_rss()
    with pytest.raises(InputError) as err:
        load_forecaster(path, device="cpu")
    message = one_line(err, path)
    assert "state_dict tensor net.stack.layers.0.weight_ih_l0 declares shape [200000, 1]" in message
    assert "over a storage of 1 values (strides [0, 1])" in message
    assert max_rss() - before < 200 * MB


def test_overlapping_strides_are_refused(tmp_path) -> None:
    good = ForecastModule(**HPARAMS).state_dict()["net.stack.layers.1.weight_hh_l0"]  # [8, 8]
    overlapped = torch.zeros(15).as_strided((8, 8), (1, 1))  # 64 values over 15 stored
    path = tampered(tmp_path / "o.ckpt", "net.stack.layers.1.weight_hh_l0", overlapped)
    assert good.shape == overlapped.shape
    with pytest.raises(
        InputError, match=r"declares shape \[8, 8\] \(64 values\) over a storage of"
    ):
        load_forecaster(path, device="cpu")


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_weights_are_refused(tmp_path, value) -> None:
    key = "net.head.linear.bias"
    bias = torch.zeros(3)
    bias[1] = value
    path = tampered(tmp_path / "nan.ckpt", key, bias)
    with pytest.raises(InputError) as err:
        load_forecaster(path, device="cpu")
    assert one_line(err, path).endswith(
        f"state_dict tensor {key} holds 1 NaN/inf values (first at index [1]); its forecasts "
        "would be NaN: expected finite weights"
    )


@pytest.mark.parametrize("dtype", [torch.bool, torch.int64, torch.int8, torch.complex64])
def test_non_float_weights_are_refused(tmp_path, dtype) -> None:
    key = "net.head.linear.weight"
    path = tampered(tmp_path / "d.ckpt", key, torch.ones(3, 8, dtype=dtype))
    with pytest.raises(InputError) as err:
        load_forecaster(path, device="cpu")
    assert one_line(err, path).endswith(
        f"state_dict tensor {key} has dtype {dtype}; expected floating-point weights"
    )


def test_batchnorm_keeps_its_integer_count(tmp_path) -> None:
    path = tmp_path / "bn.ckpt"
    module = save(path, net="rnn_bn", head="per_step", target="seq2seq")
    counts = [k for k, v in module.state_dict().items() if v.dtype == torch.int64]
    assert counts and all(k.endswith("num_batches_tracked") for k in counts)
    f = load_forecaster(path, device="cpu")
    assert f.predict(np.zeros((2, 50), np.float32)).shape == (2, 3)
    state = module.state_dict()
    state[counts[0]] = torch.tensor(True)
    with pytest.raises(InputError, match=r"has dtype torch.bool; expected floating-point weights"):
        check_state_dict(state, path)


@pytest.mark.parametrize(
    ("method", "values", "problem"),
    [
        ("conformal", [[0.1, float("nan"), 0.3], [0.2, 0.3, 0.4]], "1 NaN widths"),
        ("conformal", [[0.1, -0.2, 0.3], [0.2, 0.3, 0.4]], "negative widths (smallest -0.2)"),
        ("model", [[0.0, 0.0, -1.0], [0.0, 0.0, 0.0]], "negative widths (smallest -1)"),
        ("cqr", [[0.1, float("-inf"), 0.3], [0.2, 0.3, 0.4]], "widths of -inf"),
    ],
)
def test_tampered_interval_widths_are_refused(tmp_path, method, values, problem) -> None:
    path = tmp_path / "w.ckpt"
    save(path, calibration=widths(method, values))
    with pytest.raises(InputError) as err:
        load_forecaster(path, device="cpu")
    assert one_line(err, path).endswith(
        f"its '{CHECKPOINT_KEY}' entry ({method}) has {problem}; its interval bounds would be "
        "NaN or inverted. Expected the calibration train.py writes (no NaN, widths >= 0 or for "
        "cqr > -inf, levels in (0, 100))"
    )


def test_tampered_interval_levels_and_shapes_are_refused(tmp_path) -> None:
    path = tmp_path / "l.ckpt"
    save(path, calibration={**widths(), "levels": [80.0, 180.0]})
    with pytest.raises(InputError, match=r"has levels \[80.0, 180.0\] and n_calibration 100"):
        load_forecaster(path, device="cpu")
    save(path, calibration=widths(values=[[0.1, 0.2], [0.2, 0.3]]))  # 2 steps for horizon 3
    with pytest.raises(InputError, match=r"malformed; expected .* widths \[levels x 3 steps\]"):
        load_forecaster(path, device="cpu")


def test_an_infinite_width_from_too_few_windows_still_loads(tmp_path) -> None:
    """train.py writes ``inf`` where a level had too few calibration windows: a wide, valid
    interval, not a tampered one; a cqr widening may be negative (it narrows)."""
    path = tmp_path / "inf.ckpt"
    save(path, calibration=widths(values=[[0.1, 0.2, 0.3], [np.inf, np.inf, np.inf]]))
    f = load_forecaster(path, device="cpu")
    bounds = f.calibration.bounds(np.zeros((1, 3)))
    assert np.isinf(bounds[0, :, 1]).all() and (bounds[..., 0] <= bounds[..., 1]).all()


def test_export_refuses_what_loading_refuses(tmp_path) -> None:
    nan = tampered(tmp_path / "nan.ckpt", "net.head.linear.bias", torch.full((3,), torch.nan))
    bad_widths = tmp_path / "w.ckpt"
    save(bad_widths, calibration=widths(values=[[-1.0, 0.2, 0.3], [0.2, 0.3, 0.4]]))
    for path, match in [(nan, "NaN/inf values"), (bad_widths, "negative widths")]:
        out = tmp_path / f"export-{path.stem}"
        with pytest.raises(InputError, match=rf"^checkpoint {path}: .*{match}"):
            export_model(path, out, format="torchscript")
        assert not out.exists() or not any(out.iterdir())


def test_resume_refuses_non_finite_weights(tmp_path) -> None:
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "config.yaml").write_text("seed: 42\n")
    path = tampered(run / "checkpoints" / "last.ckpt", "net.head.linear.bias", torch.ones(3))
    raw = torch.load(path, weights_only=True)
    raw["state_dict"]["net.head.linear.bias"][0] = torch.inf
    torch.save({**raw, "loops": {}, "optimizer_states": [], "epoch": 0}, path)
    with pytest.raises(InputError) as err:
        resume_checkpoint(str(path))
    assert str(err.value).startswith(f"resume={path}: checkpoint {path}: state_dict tensor ")
    assert "NaN/inf values" in str(err.value)


def test_weights_past_the_budget_are_refused_before_building(tmp_path) -> None:
    path = tmp_path / "ok.ckpt"
    save(path)
    with memory.limit(1000), pytest.raises(ConfigError) as err:
        load_forecaster(path, device="cpu")
    assert str(err.value).startswith(f"checkpoint {path}'s network (")
    assert "max_memory is 0.0 MB: lower the network's size" in str(err.value)


def test_predict_script_refuses_nan_weights_with_exit_2(run_main, tmp_path) -> None:
    path = tampered(tmp_path / "nan.ckpt", "net.head.linear.bias", torch.full((3,), torch.nan))
    done = run_main("predict.py", f"ckpt_path={path}", f"hydra.run.dir={tmp_path}/p", cwd=tmp_path)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert lines[-1].startswith(f"error: checkpoint {path}: state_dict tensor net.head.linear")
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "p" / "predictions.npy").exists()

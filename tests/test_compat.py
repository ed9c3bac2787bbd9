"""Checkpoints written before the training-loop rewrite still load, and forecast the same.

``tests/data/v0/`` holds two checkpoints trained by the earlier version (grouped manual
optimization, ``impl`` and clipping settings in their hparams, ``batches_per_call`` in their
data settings; tiny data: 96 series split [64, 16, 16], seed 42) and the forecasts that
version made from them on fixed windows.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import CONF
from hydra import compose, initialize_config_dir

from seqforecast.data import two_sine_series
from seqforecast.errors import ConfigError, InputError
from seqforecast.fast import is_accelerated
from seqforecast.module import ForecastModule
from seqforecast.predict import load_forecaster, predict

V0 = Path(__file__).parent / "data" / "v0"
FORECASTS = np.load(V0 / "forecasts.npz")


@pytest.mark.parametrize("name", ["seq2seq", "ln_rnn"])
def test_old_checkpoint_loads_with_lightning(name: str) -> None:
    module = ForecastModule.load_from_checkpoint(V0 / f"{name}.ckpt", map_location="cpu")
    assert "impl" not in module.hparams and "gradient_clip_val" not in module.hparams
    with torch.no_grad():
        got = module.eval()(torch.from_numpy(FORECASTS["x"])).numpy()
    np.testing.assert_allclose(
        got, FORECASTS[name], rtol=1e-4, atol=5e-5
    )  # fused vs plain: rounding


@pytest.mark.parametrize("name", ["seq2seq", "ln_rnn"])
@pytest.mark.parametrize("layers", ["fast", "plain"])
def test_old_checkpoint_loads_for_prediction(name: str, layers: str) -> None:
    forecaster = load_forecaster(V0 / f"{name}.ckpt", "cpu", layers)
    assert is_accelerated(forecaster.module) == (layers == "fast")
    got = forecaster.predict(FORECASTS["x"], 10, "sliding", 1024, progress=False)
    np.testing.assert_allclose(
        got, FORECASTS[name][:, -1], rtol=1e-4, atol=5e-5
    )  # fused vs plain: rounding


@pytest.mark.parametrize("name", ["seq2seq", "ln_rnn"])
def test_old_checkpoint_predicts_its_generated_split(name: str, tmp_path: Path) -> None:
    ckpt = V0 / f"{name}.ckpt"
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(
            "predict",
            overrides=[f"ckpt_path={ckpt}", f"output_dir={tmp_path}", "progress=false", "plot=0"],
        )
    summary = predict(cfg)
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert "batches_per_call" not in metrics["data"]  # a legacy setting, dropped
    # The test split by hand: series 80..95 of the 96 generated, 50 inputs and 10 targets.
    series = two_sine_series(96, 60, seed=42)[80:, :, 0]  # [16, 60]
    pred = np.load(tmp_path / "predictions.npy")  # [16, 10]
    assert pred.shape == (16, 10)
    mse = ((pred.astype(np.float64) - series[:, 50:]) ** 2).mean()
    assert metrics["mse"] == pytest.approx(mse, rel=1e-6) and summary["mse"] == metrics["mse"]
    # The same forecast from Lightning's own loader on the hand-cut windows.
    module = ForecastModule.load_from_checkpoint(ckpt, map_location="cpu").eval()
    with torch.no_grad():
        steps = module(torch.from_numpy(series[:, :50, None])).numpy()  # [16, 50, 10]
    np.testing.assert_allclose(pred, steps[:, -1], rtol=1e-4, atol=5e-5)  # fused vs plain
    # Every step's 10 targets: the values after input step t are series[t + 1 : t + 11].
    targets = np.lib.stride_tricks.sliding_window_view(series[:, 1:], 10, axis=1)  # [16, 50, 10]
    all_steps = ((steps.astype(np.float64) - targets) ** 2).mean()
    assert metrics["mse_all_steps"] == pytest.approx(all_steps, rel=1e-4)


def test_unknown_data_settings_are_refused(tmp_path: Path) -> None:
    raw = torch.load(V0 / "seq2seq.ckpt", weights_only=True)
    raw["datamodule_hyper_parameters"]["noise"] = 0.5
    torch.save(raw, tmp_path / "noise.ckpt")
    f = load_forecaster(tmp_path / "noise.ckpt", device="cpu")
    with pytest.raises(
        InputError,
        match=r"the checkpoint's data settings are not SineDataModule's: unknown keys "
        r"\['noise'\]; expected only \['n_steps', 'horizon'",
    ):
        f.generated_data("test")
    old = load_forecaster(V0 / "seq2seq.ckpt", device="cpu")
    with pytest.raises(
        ConfigError, match=r"data overrides \['batches_per_call'\] are not settings of SineData"
    ):
        old.generated_data("test", batches_per_call=4)

"""Checkpoints written before the training-loop rewrite still load, and forecast the same.

``tests/data/v0/`` holds two checkpoints trained by the earlier version (grouped manual
optimization, ``impl`` and clipping settings in their hparams) and the forecasts that version
made from them on fixed windows.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from seqforecast.fast import is_accelerated
from seqforecast.module import ForecastModule
from seqforecast.predict import load_forecaster

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

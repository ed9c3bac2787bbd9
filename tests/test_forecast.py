"""Iterative forecasting against a hand-written loop, and the plots."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from seqforecast.core import iterative_forecast
from seqforecast.errors import InputError
from seqforecast.module import ForecastModule
from seqforecast.plots import plot_forecasts, plot_learning_curves


def test_iterative_equals_the_books_loops() -> None:
    torch.manual_seed(0)
    module = ForecastModule(net="rnn", hidden=[4, 4], head="linear", n_steps=8, horizon=1).eval()
    x = torch.randn(3, 8, 1)
    with torch.no_grad():
        got_sliding = iterative_forecast(module.forecast, x, ahead=5, window="sliding")
        got_growing = iterative_forecast(module.forecast, x, ahead=5, window="growing")
        # Book cell 38: X[:, step_ahead:] slides; cell 44: the whole X grows.
        xs, xg = x, x
        for step_ahead in range(5):
            xs = torch.cat([xs, module(xs[:, step_ahead:]).unsqueeze(-1)], dim=1)
            xg = torch.cat([xg, module(xg).unsqueeze(-1)], dim=1)
    assert got_sliding.shape == (3, 5)
    torch.testing.assert_close(got_sliding, xs[:, 8:, 0])
    torch.testing.assert_close(got_growing, xg[:, 8:, 0])
    assert not torch.allclose(got_sliding, got_growing)


def test_iterative_multi_step_chunks_and_truncates() -> None:
    def step(window: torch.Tensor) -> torch.Tensor:  # predicts last + 1, last + 2, last + 3
        return window[:, -1, :1] + torch.arange(1.0, 4.0)

    x = torch.zeros(2, 5, 1)
    out = iterative_forecast(step, x, ahead=7)
    np.testing.assert_array_equal(out[0].numpy(), [1, 2, 3, 4, 5, 6, 7])


@pytest.mark.parametrize(
    ("x", "kwargs", "match"),
    [
        (torch.zeros(2, 5, 2), {"ahead": 3}, "univariate"),
        (torch.zeros(2, 5, 1), {"ahead": 0}, "ahead"),
        (torch.zeros(2, 5, 1), {"ahead": 2, "window": "expanding"}, "window"),
    ],
)
def test_iterative_bad_input(x, kwargs, match) -> None:
    with pytest.raises(InputError, match=match):
        iterative_forecast(lambda w: w[:, -1], x, **kwargs)


def test_plots_write_pngs(tmp_path) -> None:
    rng = np.random.default_rng(0)
    png = plot_forecasts(
        rng.random((4, 50)), rng.random((4, 10)), tmp_path / "f.png", actual=rng.random((4, 10))
    )
    assert png.read_bytes()[:4] == b"\x89PNG"
    png = plot_learning_curves([0.3, 0.2, 0.1], [0.25, 0.15, 0.12], tmp_path / "c.png")
    assert png.read_bytes()[:4] == b"\x89PNG"

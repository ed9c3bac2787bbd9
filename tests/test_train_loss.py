"""``train/loss`` is the epoch's batch-size-weighted mean loss, summed without per-step logging."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from seqforecast.module import ForecastModule


def test_train_loss_is_the_weighted_epoch_mean() -> None:
    torch.manual_seed(0)
    module = ForecastModule(net="rnn", hidden=[4], head="linear", n_steps=6)
    module.on_train_epoch_start()
    batches = [(torch.randn(n, 6, 1), torch.randn(n, 1)) for n in (5, 3, 8)]
    losses = [module.train_loss(x, y).item() for x, y in batches]
    expected = np.average(losses, weights=[5, 3, 8])
    progress = module.epoch_progress
    assert progress.rows == 16
    assert progress.loss_sum / progress.rows == pytest.approx(expected, rel=1e-12)
    module.on_train_epoch_start()  # a new epoch starts from zero
    assert module.epoch_progress.rows == 0 and module.epoch_progress.loss_sum == 0

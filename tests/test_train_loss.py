"""``train/loss`` is the epoch's batch-size-weighted mean loss, summed without per-step logging."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from seqforecast.errors import NonFiniteLossError
from seqforecast.module import ForecastModule


def test_train_loss_is_the_weighted_epoch_mean() -> None:
    torch.manual_seed(0)
    module = ForecastModule(net="rnn", hidden=[4], head="linear", n_steps=6)
    module.on_train_epoch_start()
    batches = [(torch.randn(n, 6, 1), torch.randn(n, 1)) for n in (5, 3, 8)]
    losses = [module.training_step(b, i).item() for i, b in enumerate(batches)]
    with torch.no_grad():  # an independent computation of each batch's loss
        direct = [F.mse_loss(module(x), y).item() for x, y in batches]
    np.testing.assert_allclose(losses, direct, rtol=1e-6)
    expected = np.average(direct, weights=[5, 3, 8])
    assert module.loss_rows == 16
    assert (module.loss_sum / module.loss_rows).item() == pytest.approx(expected, rel=1e-6)
    module.on_train_epoch_start()  # a new epoch starts from zero
    assert module.loss_rows == 0 and module.loss_sum is None


def test_a_non_finite_running_loss_blocks_every_checkpoint() -> None:
    # The accelerator path: no per-step read, but no checkpoint from non-finite training.
    module = ForecastModule(net="rnn", hidden=[4], head="linear", n_steps=6)
    module.loss_sum, module.loss_rows = torch.tensor(float("nan")), 4
    with pytest.raises(NonFiniteLossError, match=r"became nan in epoch 0 .*model.lr="):
        module.on_save_checkpoint({})
    module.loss_sum = torch.tensor(2.0)
    checkpoint: dict = {}
    module.on_save_checkpoint(checkpoint)
    assert checkpoint["train_loss_epoch"] == [2.0, 4]


def test_a_non_finite_batch_loss_stops_before_backward_on_the_cpu() -> None:
    module = ForecastModule(net="rnn", hidden=[4], head="linear", n_steps=6)
    x, y = torch.randn(3, 6, 1), torch.full((3, 1), float("inf"))
    with pytest.raises(NonFiniteLossError, match=r"became inf at epoch 0, batch 7 "):
        module.training_step((x, y), 7)

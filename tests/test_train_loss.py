"""``train/loss`` is the epoch's batch-size-weighted mean loss, summed without per-step logging."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from seqforecast.errors import NonFiniteLossError
from seqforecast.module import EpochLoss, ForecastModule


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
    epoch = module.epoch_loss
    assert epoch.n_rows == 16
    assert (epoch.total() / epoch.n_rows).item() == pytest.approx(expected, rel=1e-6)
    module.on_train_epoch_start()  # a new epoch starts from zero
    assert module.epoch_loss.n_rows == 0 and module.epoch_loss.sum is None


def test_a_long_epoch_keeps_one_running_sum() -> None:
    epoch = EpochLoss()
    values = torch.rand(3000, dtype=torch.float64)
    rows = [3 + i % 5 for i in range(len(values))]
    for v, n in zip(values, rows, strict=True):
        epoch.add(v.float(), n)
    assert epoch.sum.shape == () and epoch.n_rows == sum(rows)  # one scalar, however long
    expected = float((values * torch.tensor(rows, dtype=torch.float64)).sum())
    assert epoch.total().item() == pytest.approx(expected, rel=1e-5)


def test_a_non_finite_running_loss_blocks_every_checkpoint() -> None:
    # The accelerator path: no per-step read, but no checkpoint from non-finite training.
    module = ForecastModule(net="rnn", hidden=[4], head="linear", n_steps=6)
    module.epoch_loss.add(torch.tensor(float("nan")), 4)
    with pytest.raises(NonFiniteLossError, match=r"became nan in epoch 0 .*model.lr="):
        module.on_save_checkpoint({})
    module.on_train_epoch_start()
    module.epoch_loss.add(torch.tensor(0.5), 4)
    checkpoint: dict = {}
    module.on_save_checkpoint(checkpoint)
    assert checkpoint["train_loss_epoch"] == [2.0, 4]


def test_a_non_finite_batch_loss_stops_before_backward_on_the_cpu() -> None:
    module = ForecastModule(net="rnn", hidden=[4], head="linear", n_steps=6)
    x, y = torch.randn(3, 6, 1), torch.full((3, 1), float("inf"))
    with pytest.raises(NonFiniteLossError, match=r"became inf at epoch 0, batch 7 "):
        module.training_step((x, y), 7)

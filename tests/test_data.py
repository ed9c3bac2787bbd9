"""The generator, windows, splits and batching against the book and hand computations."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from seqforecast.data import SineDataModule, make_windows, two_sine_series
from seqforecast.data.batches import BatchIndexSampler, TensorPairs, batch_loader
from seqforecast.errors import ConfigError


def book_generate(batch_size: int, n_steps: int) -> np.ndarray:
    """The book's generator (cell 8) on numpy's legacy global RNG."""
    freq1, freq2, offsets1, offsets2 = np.random.rand(4, batch_size, 1)
    time = np.linspace(0, 1, n_steps)
    series = 0.5 * np.sin((time - offsets1) * (freq1 * 10 + 10))
    series += 0.2 * np.sin((time - offsets2) * (freq2 * 20 + 20))
    series += 0.1 * (np.random.rand(batch_size, n_steps) - 0.5)
    return series[..., np.newaxis].astype(np.float32)


@pytest.fixture(scope="module")
def book_1step() -> SineDataModule:
    dm = SineDataModule(horizon=1, target="next")
    dm.setup()
    return dm


@pytest.fixture(scope="module")
def book_10step() -> SineDataModule:
    dm = SineDataModule(horizon=10, target="next")
    dm.setup()
    return dm


def test_matches_book_generator_bit_for_bit() -> None:
    state = np.random.get_state()
    try:
        np.random.seed(42)
        expected = book_generate(500, 60)
    finally:
        np.random.set_state(state)
    np.testing.assert_array_equal(two_sine_series(500, 60, seed=42), expected)


def test_pinned_book_values(book_1step: SineDataModule, book_10step: SineDataModule) -> None:
    x, y = book_1step.arrays("train")
    assert x.shape == (7000, 50, 1) and y.shape == (7000, 1) and x.dtype == np.float32
    # The book prints 8 significant digits: equal to within one float32 ulp.
    np.testing.assert_allclose(x[0, :3, 0], [0.4596948, 0.31486678, 0.12497123], rtol=1e-7)
    assert y[0, 0] == pytest.approx(-0.35489398, rel=1e-7)
    x10, _ = book_10step.arrays("train")
    np.testing.assert_allclose(x10[0, :3, 0], [0.4596948, 0.33874455, 0.18980233], rtol=1e-7)


def test_splits_are_consecutive_blocks(book_10step: SineDataModule) -> None:
    series = two_sine_series(10000, 60, seed=42)
    for stage, (lo, hi) in {"train": (0, 7000), "val": (7000, 9000), "test": (9000, 10000)}.items():
        x, y = book_10step.arrays(stage)
        np.testing.assert_array_equal(x, series[lo:hi, :50])
        np.testing.assert_array_equal(y, series[lo:hi, 50:, 0])


def test_naive_baselines_match_book(
    book_1step: SineDataModule, book_10step: SineDataModule
) -> None:
    x, y = book_1step.arrays("val")
    assert np.mean((x[:, -1] - y) ** 2) == pytest.approx(0.020211367, abs=5e-9)
    x, y = book_10step.arrays("val")
    assert np.mean((np.tile(x[:, -1], 10) - y) ** 2) == pytest.approx(0.25697407, abs=5e-8)


def test_seq2seq_alignment_against_a_loop() -> None:
    series = two_sine_series(7, 50 + 4, seed=3)
    x, y = make_windows(series, 50, 4, "seq2seq")
    assert x.shape == (7, 50, 1) and y.shape == (7, 50, 4)
    for n in range(7):
        for t in range(50):
            for j in range(4):
                assert y[n, t, j] == series[n, t + 1 + j, 0]
    _, y_next = make_windows(series, 50, 4, "next")
    np.testing.assert_array_equal(y[:, -1, :], y_next)


def test_setup_is_idempotent() -> None:
    dm = SineDataModule(n_series=30, split=[10, 10, 10])
    dm.setup("fit")
    first = dm.splits["train"].x
    dm.setup("test")
    assert dm.splits["train"].x is first


def test_fraction_split() -> None:
    assert SineDataModule(n_series=100, split=[0.7, 0.2, 0.1]).sizes == (70, 20, 10)


@pytest.mark.parametrize(
    ("split", "cuts"),
    [([0.6, 0.25, 0.15], [26, 37]), ([20, 11, 12], [20, 31]), ((0.5, 0.25, 0.25), [22, 33])],
)
def test_splits_equal_an_independent_numpy_split(split, cuts: list[int]) -> None:
    """43 series, seq2seq: every split's windows equal numpy's split of the generated series."""
    dm = SineDataModule(n_steps=8, horizon=3, target="seq2seq", n_series=43, split=split, seed=7)
    series = two_sine_series(43, 11, seed=7)  # [N, 11, 1]
    for stage, block in zip(("train", "val", "test"), np.split(series, cuts), strict=True):
        x, y = dm.arrays(stage)
        np.testing.assert_array_equal(x, block[:, :8])
        expected = np.stack([block[:, 1 + t : 4 + t, 0] for t in range(8)], axis=1)  # [n, 8, 3]
        np.testing.assert_array_equal(y, expected)
    assert dm.bounds == (0, *cuts, 43)


def test_loaders_batch_each_split() -> None:
    dm = SineDataModule(n_series=50, split=[30, 12, 8], batch_size=7, eval_batch_size=5)
    dm.setup("fit")
    train = list(dm.train_dataloader())
    assert [len(x) for x, _ in train] == [7, 7, 7, 7, 2]
    shuffled = torch.cat([y for _, y in train]).numpy().ravel()  # every training row once
    np.testing.assert_array_equal(np.sort(shuffled), np.sort(dm.arrays("train")[1].ravel()))
    val = list(dm.val_dataloader())
    assert [len(x) for x, _ in val] == [5, 5, 2]
    np.testing.assert_array_equal(torch.cat([y for _, y in val]).numpy(), dm.arrays("val")[1])
    assert [len(x) for x, _ in dm.test_dataloader()] == [5, 3]
    with pytest.raises(ConfigError, match=r"split 'holdout' is unknown; expected one of"):
        dm.arrays("holdout")


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [
        ({"n_steps": 1}, "n_steps"),
        ({"horizon": 0}, "horizon"),
        ({"target": "seq"}, "target"),
        ({"n_series": 100}, "data.split"),
        ({"split": [5, 5]}, "data.split"),
        ({"split": [0.5, 0.6, -0.1]}, "data.split"),
        (
            {"n_series": 50, "split": [0.98, 0.01, 0.01]},
            r"data.split=\[0.98, 0.01, 0.01\] leaves a split of data.n_series=50 empty",
        ),
        ({"split": [0.5, 0.4, 0.2]}, r"does not fit data.n_series=10000: expected three counts"),
        ({"batch_size": 0}, "data.batch_size"),
        ({"eval_batch_size": 1.5}, r"^data.eval_batch_size=1.5 is not allowed: expected an"),
        ({"n_series": 0}, r"^data.n_series=0 is not allowed: expected an integer >= 1$"),
        ({"split": ["2020-01-01", "2020-06-01"]}, "needs file data with a date column"),
    ],
)
def test_bad_settings_name_the_key(kwargs: dict, key: str) -> None:
    with pytest.raises(ConfigError, match=key):
        SineDataModule(**kwargs)


def test_sampler_permutes_every_epoch_reproducibly() -> None:
    sampler = BatchIndexSampler(70, 32, seed=5)
    epoch0 = torch.cat(list(sampler))
    assert [len(b) for b in sampler] == [32, 32, 6] and len(sampler) == 3
    assert sorted(epoch0.tolist()) == list(range(70))
    sampler.set_epoch(1)
    epoch1 = torch.cat(list(sampler))
    assert not torch.equal(epoch0, epoch1)
    sampler.set_epoch(0)
    assert torch.equal(torch.cat(list(sampler)), epoch0)


def test_sampler_shards_are_disjoint_and_cover() -> None:
    shards = [
        torch.cat(list(BatchIndexSampler(70, 8, seed=1, rank=r, world_size=2))) for r in range(2)
    ]
    assert len(shards[0]) == len(shards[1]) == 35
    assert set(shards[0].tolist()).isdisjoint(shards[1].tolist())
    assert set(shards[0].tolist()) | set(shards[1].tolist()) == set(range(70))


def test_loader_yields_index_slices() -> None:
    x, y = torch.arange(10.0).view(10, 1, 1), torch.arange(10.0).view(10, 1)
    batches = list(batch_loader(TensorPairs(x, y), 4))
    assert [b[0].shape for b in batches] == [(4, 1, 1), (4, 1, 1), (2, 1, 1)]
    assert torch.equal(torch.cat([b[1] for b in batches]), y)


def test_loader_state_resumes_mid_epoch_with_the_next_batch() -> None:
    x, y = torch.arange(70.0).view(70, 1, 1), torch.arange(70.0).view(70, 1)
    loader = batch_loader(TensorPairs(x, y), 8, seed=3)
    loader.sampler.set_epoch(2)
    full = [b[1] for b in loader]
    assert len(full) == len(loader) == 9
    it = iter(loader)
    seen = [next(it)[1] for _ in range(3)]
    state = loader.state_dict()
    assert state == {"epoch": 2, "batches": 3}
    # A fresh loader (the resumed process) gets the state, then Lightning sets the epoch.
    resumed = batch_loader(TensorPairs(x, y), 8, seed=3)
    resumed.load_state_dict(state)
    resumed.sampler.set_epoch(2)
    rest = [b[1] for b in resumed]
    for a, b in zip(seen + rest, full, strict=True):
        assert torch.equal(a, b)
    assert resumed.state_dict() == {"epoch": 2, "batches": 9}
    assert len(list(resumed)) == 9  # the skip applies to one pass only


def test_loader_state_from_an_epoch_end_skips_nothing_in_the_next() -> None:
    x, y = torch.arange(70.0).view(70, 1, 1), torch.arange(70.0).view(70, 1)
    loader = batch_loader(TensorPairs(x, y), 8, seed=3)
    state = (list(loader), loader.state_dict())[1]
    assert state == {"epoch": 0, "batches": 9}
    resumed = batch_loader(TensorPairs(x, y), 8, seed=3)
    resumed.load_state_dict(state)
    resumed.sampler.set_epoch(1)
    loader.sampler.set_epoch(1)
    assert [b[1].tolist() for b in resumed] == [b[1].tolist() for b in loader]

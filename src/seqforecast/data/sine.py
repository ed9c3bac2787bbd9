"""``SineDataModule``: the chapter's generated series, split and batched."""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise

import torch

from seqforecast.data.batches import TensorPairs
from seqforecast.data.generate import two_sine_series
from seqforecast.data.splits import SplitDataModule, resolve_split
from seqforecast.data.windows import FLOAT32, check_window, make_windows, window_bytes
from seqforecast.errors import ConfigError
from seqforecast.rules import check

# Bytes per series value while two_sine_series runs: about three float64 [N, L] arrays live.
GENERATE_BYTES = 24


class SineDataModule(SplitDataModule):
    """Two-sine series cut into windows; train/val/test are consecutive blocks of series.

    The book's datasets: ``n_steps=50`` with ``horizon=1, target="next"`` (1-step),
    ``horizon=10, target="next"`` (seq2vec) and ``horizon=10, target="seq2seq"``.
    ``split``: three counts summing to ``n_series``, or three fractions summing to 1
    (:func:`~seqforecast.data.splits.resolve_split`); ``sizes`` holds the series per split.
    Batches: ``x [B, n_steps, 1]`` and ``y [B, k]`` (next) or ``[B, n_steps, k]`` (seq2seq).

    Args:
        n_steps: Input steps per window ``T``.
        horizon: Steps forecast per window ``k``.
        target: ``next`` or ``seq2seq``.
        n_series: Series generated (:func:`~seqforecast.data.generate.two_sine_series`).
        split: Series of train, val and test: three counts or three fractions.
        batch_size: Training windows per batch.
        eval_batch_size: Val, test and predict windows per batch.
        seed: Seed of the generated series.
        shuffle_seed: Seed of the training loader's shuffle.

    Raises:
        ConfigError: A setting is not allowed, or the split leaves a split empty.
    """

    LOWER = "n_steps, horizon or data.n_series"

    def __init__(
        self,
        n_steps: int = 50,
        horizon: int = 1,
        target: str = "next",
        n_series: int = 10000,
        split: Sequence[float] = (7000, 2000, 1000),
        batch_size: int = 32,
        eval_batch_size: int = 1024,
        seed: int = 42,
        shuffle_seed: int = 42,
    ) -> None:
        super().__init__(batch_size, eval_batch_size, shuffle_seed)
        check_window(n_steps, horizon, target)
        self.n_series = check("data.n_series", n_series)
        self.seed = check("data.seed", seed)
        self.sizes = resolve_split(split, n_series, f"data.n_series={n_series}")
        if min(self.sizes) < 1:
            raise ConfigError(
                f"data.split={list(split)} leaves a split of data.n_series={n_series} empty "
                f"(sizes {list(self.sizes)}); each split needs at least one series"
            )
        # Plain values, so a checkpoint can rebuild its data (``datamodule_hyper_parameters``).
        self.save_hyperparameters()
        self.n_steps, self.horizon, self.target = n_steps, horizon, target
        self.n_features = 1

    def split_sizes(self) -> tuple[int, int, int]:
        return self.sizes

    def memory_bytes(self, sizes: Sequence[int]) -> int:
        """About the peak bytes of :meth:`cut`: the float64 generation, or the float32
        series ``[N, n_steps + horizon]`` with its windows, whichever is larger."""
        n = sum(sizes)
        values = n * (self.n_steps + self.horizon)
        windows = window_bytes(n, self.n_steps, self.horizon, 1, self.target)
        return max(GENERATE_BYTES * values, FLOAT32 * values + windows)

    def memory_use(self, sizes: Sequence[int]) -> str:
        return (
            f"the series and windows of n_steps={self.n_steps}, horizon={self.horizon} "
            f"({self.target}) with data.n_series={sum(sizes)}"
        )

    def cut(self, bounds: tuple[int, int, int, int]) -> list[TensorPairs]:
        """Generate every series, window them, and take consecutive blocks (views, no copies)."""
        series = two_sine_series(self.n_series, self.n_steps + self.horizon, seed=self.seed)
        x, y = make_windows(series, self.n_steps, self.horizon, self.target)
        return [
            TensorPairs(torch.from_numpy(x[lo:hi]), torch.from_numpy(y[lo:hi]))
            for lo, hi in pairwise(bounds)
        ]

"""``SineDataModule``: the chapter's generated series, split and batched."""

from __future__ import annotations

from collections.abc import Sequence

import lightning as L
import numpy as np
import torch

from seqforecast.data.batches import SplitLoaders
from seqforecast.data.generate import two_sine_series
from seqforecast.data.windows import (
    FLOAT32,
    check_memory,
    check_window,
    make_windows,
    window_bytes,
)
from seqforecast.errors import ConfigError

STAGES = ("train", "val", "test")
# Bytes per series value while two_sine_series runs: about three float64 [N, L] arrays live.
GENERATE_BYTES = 24


def split_sizes(split: Sequence[float], n_series: int) -> tuple[int, int, int]:
    """Resolve ``split`` (three counts summing to ``n_series``, or three fractions summing to 1)."""
    if (
        not isinstance(split, Sequence)
        or isinstance(split, str)
        or len(split) != 3
        or any(isinstance(s, bool) or not isinstance(s, int | float) for s in split)
    ):
        raise ConfigError(f"data.split must be three numbers [train, val, test], got {split!r}")
    if all(isinstance(s, int) for s in split):
        sizes = tuple(int(s) for s in split)
    elif abs(sum(split) - 1.0) < 1e-6 and all(0 < s < 1 for s in split):
        train, val = round(split[0] * n_series), round(split[1] * n_series)
        sizes = (train, val, n_series - train - val)
    else:
        raise ConfigError(
            f"data.split={list(split)} must be three counts or three fractions summing to 1"
        )
    if any(s < 1 for s in sizes) or sum(sizes) != n_series:
        raise ConfigError(
            f"data.split={list(split)} does not fit data.n_series={n_series}: expected three "
            f"positive counts summing to {n_series} (e.g. [7000, 2000, 1000] for 10000)"
        )
    return sizes  # type: ignore[return-value]


class SineDataModule(SplitLoaders, L.LightningDataModule):
    """Two-sine series cut into windows; train/val/test are consecutive blocks of series.

    The book's datasets: ``n_steps=50`` with ``horizon=1, target="next"`` (1-step),
    ``horizon=10, target="next"`` (seq2vec) and ``horizon=10, target="seq2seq"``.
    Batches: ``x [B, n_steps, 1]`` and ``y [B, k]`` (next) or ``[B, n_steps, k]`` (seq2seq).
    """

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
        super().__init__()
        check_window(n_steps, horizon, target)
        for key, value in (
            ("n_series", n_series),
            ("batch_size", batch_size),
            ("eval_batch_size", eval_batch_size),
        ):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"data.{key} must be a positive integer, got {value!r}")
        self.sizes = split_sizes(split, n_series)
        # Plain values, so a checkpoint can rebuild its data (``datamodule_hyper_parameters``).
        self.save_hyperparameters()
        self.n_steps, self.horizon, self.target = n_steps, horizon, target
        self.n_series, self.batch_size, self.eval_batch_size = n_series, batch_size, eval_batch_size
        self.seed, self.shuffle_seed = seed, shuffle_seed
        self.n_features = 1
        self.splits: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

    def setup(self, stage: str | None = None) -> None:
        """Generate and split once; later calls are no-ops."""
        if self.splits:
            return
        self.check_memory()
        series = two_sine_series(self.n_series, self.n_steps + self.horizon, seed=self.seed)
        x, y = make_windows(series, self.n_steps, self.horizon, self.target)
        bounds = np.cumsum((0, *self.sizes))
        for name, lo, hi in zip(STAGES, bounds[:-1], bounds[1:], strict=True):
            self.splits[name] = (torch.from_numpy(x[lo:hi]), torch.from_numpy(y[lo:hi]))

    def memory_bytes(self) -> int:
        """About the peak bytes of :meth:`setup`: the float64 generation, or the float32
        series ``[N, n_steps + horizon]`` with its windows, whichever is larger."""
        values = self.n_series * (self.n_steps + self.horizon)
        windows = window_bytes(self.n_series, self.n_steps, self.horizon, 1, self.target)
        return max(GENERATE_BYTES * values, FLOAT32 * values + windows)

    def check_memory(self) -> None:
        """Refuse settings whose series and windows would not fit in the memory available."""
        check_memory(
            self.memory_bytes(),
            f"the series and windows of n_steps={self.n_steps}, horizon={self.horizon} "
            f"({self.target}) with data.n_series={self.n_series}",
            "n_steps, horizon or data.n_series",
        )

    def arrays(self, stage: str) -> tuple[np.ndarray, np.ndarray]:
        """The ``(x, y)`` numpy arrays of one split (``train``, ``val`` or ``test``)."""
        self.setup()
        x, y = self.splits[stage]
        return x.numpy(), y.numpy()

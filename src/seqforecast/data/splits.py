"""Train/val/test splits: how ``data.split`` is read, and the DataModule base both data kinds share.

:func:`resolve_split` turns ``data.split`` into items per split (series for generated data,
rows for a file): three counts, three fractions (train and val rounded, test the rest), or
two dates where val and test begin (file data with a date column). :class:`SplitDataModule`
cuts the splits once, keeps them as tensors and hands Lightning their loaders.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader

from seqforecast.data.batches import TensorPairs, batch_loader
from seqforecast.data.lazy import Windows
from seqforecast.errors import ConfigError
from seqforecast.memory import check_memory
from seqforecast.rules import check

if TYPE_CHECKING:  # pandas is imported where dates are read, off the train start-up path
    import pandas as pd

STAGES = ("train", "val", "test")


def resolve_split(
    split: Sequence[Any], n: int, what: str, times: pd.Series | None = None
) -> tuple[int, int, int]:
    """Items per split of ``n`` (``what`` names them in errors, e.g. ``data.n_series=100``).

    ``split``: three counts summing to ``n``; three fractions summing to 1 (train
    ``round(f0 * n)``, val ``round(f1 * n)``, test the rest); or two dates ``[val_start,
    test_start]``: train is every item before ``val_start``, val those up to ``test_start``,
    test the rest (needs ``times``, the items' dates in order).
    """
    split = list(check("data.split", split))
    if len(split) == 2:
        return _split_by_dates(split, n, times)
    sizes = None
    if all(isinstance(s, int) for s in split):
        sizes = (split[0], split[1], split[2])
    elif abs(sum(split) - 1.0) < 1e-6:
        train, val = round(split[0] * n), round(split[1] * n)
        sizes = (train, val, n - train - val)
    if sizes is None or sum(sizes) != n:
        raise ConfigError(
            f"data.split={split} does not fit {what}: expected three counts summing to {n} "
            "or three fractions summing to 1"
        )
    return sizes


def _split_by_dates(split: list[str], n: int, times: pd.Series | None) -> tuple[int, int, int]:
    import pandas as pd

    if times is None or not pd.api.types.is_datetime64_any_dtype(times):
        raise ConfigError(
            f"data.split={split} gives dates, which needs file data with a date column in data.time"
        )
    try:
        val_start, test_start = (pd.Timestamp(s) for s in split)
    except ValueError as err:
        raise ConfigError(f"data.split={split}: not dates ({err})") from None
    if not val_start < test_start:
        raise ConfigError(f"data.split={split}: the val start must come before the test start")
    train = int((times < val_start).sum())
    val = int((times < test_start).sum()) - train
    return train, val, n - train - val


class SplitDataModule(L.LightningDataModule, ABC):
    """Train/val/test windows, cut once and kept as tensors; what both DataModules share.

    :meth:`setup` runs a subclass's three steps once, in order: :meth:`split_sizes` (items
    per split), the memory check (:meth:`memory_bytes` against the memory available, so a
    run that would not fit stops before anything large is made) and :meth:`cut` (each
    split's ``(x, y)`` tensors). ``bounds`` are then the split boundaries ``(0, train,
    train + val, total)``. Loaders: ``train`` reshuffles each epoch from ``shuffle_seed``
    and is resumable mid-epoch; ``val``/``test`` (and ``predict``: the test windows) yield
    ``eval_batch_size`` rows in order;
    under distributed training each process iterates its own shard.
    """

    # The settings that shrink the memory :meth:`setup` needs, named when it would not fit.
    LOWER: str

    def __init__(self, batch_size: int, eval_batch_size: int, shuffle_seed: int) -> None:
        super().__init__()
        self.batch_size = check("data.batch_size", batch_size)
        self.eval_batch_size = check("data.eval_batch_size", eval_batch_size)
        self.shuffle_seed = check("data.shuffle_seed", shuffle_seed)
        self.splits: dict[str, TensorPairs | Windows] = {}
        self.bounds: tuple[int, int, int, int] | None = None

    @abstractmethod
    def split_sizes(self) -> tuple[int, int, int]:
        """Items (series or rows) per split, each enough for at least one window."""

    @abstractmethod
    def memory_bytes(self, sizes: Sequence[int]) -> int:
        """About the peak bytes of :meth:`cut` for splits of ``sizes`` items."""

    @abstractmethod
    def memory_use(self, sizes: Sequence[int]) -> str:
        """What takes that memory, with the settings it comes from (for the error)."""

    @abstractmethod
    def cut(self, bounds: tuple[int, int, int, int]) -> list[TensorPairs | Windows]:
        """The windows of train, val and test (``dataset[idx] -> (x, y)``): split ``i`` scores items
        ``bounds[i]:bounds[i + 1]`` (a series split keeps whole series; a file's val and
        test windows may take their inputs from earlier rows)."""

    def setup(self, stage: str | None = None) -> None:
        """Size, check and cut the splits once; later calls (one per Lightning stage) are no-ops."""
        if self.splits:
            return
        sizes = self.split_sizes()
        check_memory(self.memory_bytes(sizes), self.memory_use(sizes), self.LOWER)
        train, val, test = sizes
        self.bounds = (0, train, train + val, train + val + test)
        self.splits = dict(zip(STAGES, self.cut(self.bounds), strict=True))

    def arrays(self, stage: str) -> tuple[np.ndarray, np.ndarray]:
        """The ``(x, y)`` numpy arrays of one split (``train``, ``val`` or ``test``)."""
        if stage not in STAGES:
            raise ConfigError(f"split {stage!r} is unknown; expected one of {list(STAGES)}")
        self.setup()
        split = self.splits[stage]
        if isinstance(split, Windows):  # materialised: for small data and tests
            x, y = split[:]
            return x.numpy(), y.numpy()
        return split.x.numpy(), split.y.numpy()

    def eval_batches(
        self, stage: str
    ) -> Iterator[tuple[torch.Tensor, np.ndarray, np.ndarray | None]]:
        """One split in order, ``eval_batch_size`` windows at a time: the inputs ``[b, T, F]``,
        the ``k`` values after each window ``[b, k]`` and each window's series (``[b]``;
        ``None`` for generated data). Memory: one batch."""
        self.setup()
        split = self.splits[stage]
        for lo in range(0, len(split), self.eval_batch_size):
            x, y = split[torch.arange(lo, min(lo + self.eval_batch_size, len(split)))]
            y = (y[:, -1] if y.ndim == 3 else y).numpy()  # [b, k]
            windows = isinstance(split, Windows)
            yield x, y, split.series(torch.arange(lo, lo + len(x))).numpy() if windows else None

    def _shard(self) -> dict[str, int]:
        if self.trainer is None:
            return {}
        return {"rank": self.trainer.global_rank, "world_size": self.trainer.world_size}

    def train_dataloader(self) -> DataLoader:
        return batch_loader(
            self.splits["train"], self.batch_size, self.shuffle_seed, **self._shard()
        )

    def val_dataloader(self) -> DataLoader:
        return batch_loader(self.splits["val"], self.eval_batch_size, **self._shard())

    def test_dataloader(self) -> DataLoader:
        return batch_loader(self.splits["test"], self.eval_batch_size, **self._shard())

    def predict_dataloader(self) -> DataLoader:
        """The test windows, as ``test_dataloader`` (``Trainer.predict``'s default data)."""
        return self.test_dataloader()

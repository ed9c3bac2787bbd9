"""In-memory batching: whole batches are index slices of tensors, no per-item collate.

A ``DataLoader`` with ``batch_size=None`` over :class:`TensorPairs` (or the lazy
:class:`~seqforecast.data.lazy.Windows`) and a
:class:`BatchIndexSampler` hands each step one ``(x[idx], y[idx])`` pair, so the cost per
batch is one gather per tensor. The sampler reshuffles per epoch from ``seed + epoch``
(Lightning calls ``set_epoch``), so the data order is reproducible; ``rank``/``world_size``
give each process a disjoint shard for distributed training.

The training loader is a :class:`ResumableLoader`: it has ``state_dict``/``load_state_dict``,
the interface through which Lightning saves a loader's position in every checkpoint and
hands it back on resume, so a run resumed from a mid-epoch checkpoint continues with the
very next batch of the interrupted epoch.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, Sampler


class TensorPairs(Dataset):
    """Inputs ``x [N, ...]`` and targets ``y [N, ...]``; indexing takes a whole index tensor."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        if len(x) != len(y):
            raise ValueError(f"x has {len(x)} rows but y has {len(y)}")
        self.x, self.y = x, y

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # index_select: the same rows as x[idx], without advanced indexing's set-up cost.
        return self.x.index_select(0, idx), self.y.index_select(0, idx)


class BatchIndexSampler(Sampler[torch.Tensor]):
    """Yields index tensors of ``batch_size`` rows (the last may be shorter).

    With a ``seed`` the order is a permutation drawn from ``seed + epoch`` (``None``: in
    order). With
    ``world_size > 1`` the permutation is cut into ``world_size`` strided shards of
    equal length (padded by wrap-around, as ``DistributedSampler`` does) and this rank
    iterates its own. ``yielded`` counts the batches handed out in the current pass;
    :meth:`resume_at` makes the next pass over ``epoch`` start after its first ``batches``.
    """

    def __init__(
        self, n: int, batch_size: int, seed: int | None = None, rank: int = 0, world_size: int = 1
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.n, self.batch_size, self.seed = n, batch_size, seed
        self.rank, self.world_size = rank, world_size
        self.epoch = 0
        self.yielded = 0
        self._resume: tuple[int, int] | None = None  # (epoch, batches done) to skip once

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def resume_at(self, epoch: int, batches: int) -> None:
        """Skip the first ``batches`` of the next pass if that pass is over ``epoch``."""
        self._resume = (epoch, batches)

    def _indices(self) -> torch.Tensor:
        if self.seed is not None:
            g = torch.Generator().manual_seed(self.seed + self.epoch)
            order = torch.randperm(self.n, generator=g)
        else:
            order = torch.arange(self.n)
        if self.world_size > 1:
            per_rank = -(-self.n // self.world_size)
            order = order.repeat(2)[: per_rank * self.world_size]  # pad by wrap-around
            order = order[self.rank :: self.world_size]
        return order

    def __iter__(self) -> Iterator[torch.Tensor]:
        # A generator: the order is drawn at the first batch, after Lightning's set_epoch,
        # even when the iterator was created earlier (as Lightning does before each epoch).
        skip = 0
        if self._resume is not None and self._resume[0] == self.epoch:
            skip = self._resume[1]
        self._resume = None
        self.yielded = skip
        for idx in self._indices().split(self.batch_size)[skip:]:
            self.yielded += 1
            yield idx

    def __len__(self) -> int:
        """Batches per epoch for this rank."""
        n = -(-self.n // self.world_size)
        return -(-n // self.batch_size)


class ResumableLoader(DataLoader):
    """A ``DataLoader`` over a :class:`BatchIndexSampler` that Lightning can checkpoint.

    ``state_dict()`` is the sampler's epoch and the batches it has handed out in it;
    Lightning stores it with the loop state and calls ``load_state_dict`` before the
    resumed epoch starts, whose pass then skips those batches. A state saved at the end
    of an epoch skips nothing: the resumed run starts the next epoch.
    """

    sampler: BatchIndexSampler

    def state_dict(self) -> dict[str, Any]:
        return {"epoch": self.sampler.epoch, "batches": self.sampler.yielded}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.sampler.resume_at(int(state_dict["epoch"]), int(state_dict["batches"]))


def batch_loader(
    dataset: Dataset, batch_size: int, seed: int | None = None, **shard: int
) -> ResumableLoader:
    """A single-process loader of ``dataset[idx]`` batches of ``batch_size`` items, for a
    dataset indexed by a whole index tensor (:class:`TensorPairs`,
    :class:`~seqforecast.data.lazy.Windows`); shuffled per epoch when given a ``seed``, and
    ``shard`` (``rank``, ``world_size``) as :class:`BatchIndexSampler` takes them."""
    sampler = BatchIndexSampler(len(dataset), batch_size, seed, **shard)
    return ResumableLoader(dataset, sampler=sampler, batch_size=None)

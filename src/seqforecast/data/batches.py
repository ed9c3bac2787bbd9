"""In-memory batching: whole batches are index slices of tensors, no per-item collate.

A ``DataLoader`` with ``batch_size=None`` over :class:`TensorPairs` and a
:class:`BatchIndexSampler` hands each evaluation step one ``(x[idx], y[idx])`` pair,
so the cost per batch is one fancy-index per tensor. Training takes batches in groups
(:class:`BatchGroups`): one ``training_step`` call gets a :class:`BatchGroup` of
``batches_per_call`` batches and takes one optimizer step per batch, so Lightning's
per-call work (and its transfer to the device: two tensors) is paid once per group.
The sampler reshuffles per epoch from ``seed + epoch`` (Lightning calls ``set_epoch``),
so data order is reproducible and can be restored on resume; ``rank``/``world_size``
give each process a disjoint shard for distributed training.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import lightning as L
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


@dataclass
class BatchGroup:
    """Consecutive training batches, gathered: ``x [n, ...]`` and ``y [n, ...]``.

    Iterating yields ``(x [b, ...], y [b, ...])`` batches of ``batch_size`` rows (views;
    the last may be shorter). Lightning moves a group to the device with :meth:`to`.
    """

    x: torch.Tensor
    y: torch.Tensor
    batch_size: int

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        return zip(self.x.split(self.batch_size), self.y.split(self.batch_size), strict=True)

    def __len__(self) -> int:
        return -(-len(self.x) // self.batch_size)

    def to(self, device: torch.device | str, non_blocking: bool = False) -> BatchGroup:
        """The group on ``device``: two tensor copies (none when it is there already)."""
        x = self.x.to(device, non_blocking=non_blocking)
        return BatchGroup(x, self.y.to(device, non_blocking=non_blocking), self.batch_size)


class BatchGroups(TensorPairs):
    """Training batches in groups: ``dataset[idx]`` is the :class:`BatchGroup` of rows ``idx``."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, batch_size: int) -> None:
        super().__init__(x, y)
        self.batch_size = batch_size

    def __getitem__(self, idx: torch.Tensor) -> BatchGroup:
        x, y = super().__getitem__(idx)
        return BatchGroup(x, y, self.batch_size)


class BatchIndexSampler(Sampler[torch.Tensor]):
    """Yields index tensors of ``batch_size`` rows (the last may be shorter).

    With ``shuffle`` the order is a permutation drawn from ``seed + epoch``. With
    ``world_size > 1`` the permutation is cut into ``world_size`` strided shards of
    equal length (padded by wrap-around, as ``DistributedSampler`` does) and this
    rank iterates its own. With ``batches_per_call = g > 1`` each index tensor holds
    ``g`` consecutive batches (``g * batch_size`` rows; the last group may be shorter),
    for :class:`BatchGroups`. ``skip`` counts batches, not groups.
    """

    def __init__(
        self,
        n: int,
        batch_size: int,
        shuffle: bool = False,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        batches_per_call: int = 1,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if batches_per_call < 1:
            raise ValueError(f"batches_per_call must be >= 1, got {batches_per_call}")
        self.n, self.batch_size, self.shuffle, self.seed = n, batch_size, shuffle, seed
        self.batches_per_call = batches_per_call
        self.rank, self.world_size = rank, world_size
        self.epoch = 0
        self.skip = 0  # batches of the next epoch to skip once (mid-epoch resume)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _indices(self) -> torch.Tensor:
        if self.shuffle:
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
        # A generator: the order is drawn at the first batch, after Lightning's
        # set_epoch, even when the iterator was created earlier (as on resume).
        order = self._indices()[self.skip * self.batch_size :]
        self.skip = 0
        yield from order.split(self.batch_size * self.batches_per_call)

    @property
    def n_batches(self) -> int:
        """Batches per epoch for this rank."""
        n = -(-self.n // self.world_size)
        return -(-n // self.batch_size)

    def __len__(self) -> int:
        return -(-self.n_batches // self.batches_per_call)


def resume_position(trainer: L.Trainer | None, n_batches: int) -> int:
    """Training batches of the current epoch already done when resuming mid-epoch, else 0.

    Lightning restores the checkpoint (loop counters, and the module's count of the
    epoch's batches, ``train_batches``) before it asks for the train loader.
    """
    if trainer is None or not trainer.fit_loop.restarting:
        return 0
    done = getattr(trainer.lightning_module, "train_batches", 0)
    return done if 0 < done < n_batches else 0


def tensor_loader(
    x: torch.Tensor,
    y: torch.Tensor,
    batch_size: int,
    shuffle: bool = False,
    seed: int = 0,
    batches_per_call: int | None = None,
    **shard,
) -> DataLoader:
    """A single-process ``DataLoader`` of ``(x[idx], y[idx])`` batches.

    With ``batches_per_call`` set, each item is a list of up to that many such batches
    (:class:`BatchGroups`), as the training step takes them.
    """
    sampler = BatchIndexSampler(
        len(x),
        batch_size,
        shuffle=shuffle,
        seed=seed,
        batches_per_call=batches_per_call or 1,
        **shard,
    )
    data = TensorPairs(x, y) if batches_per_call is None else BatchGroups(x, y, batch_size)
    return DataLoader(data, sampler=sampler, batch_size=None)


def split_loader(
    splits: dict[str, tuple[torch.Tensor, torch.Tensor]],
    stage: str,
    trainer: L.Trainer | None,
    batch_size: int,
    eval_batch_size: int,
    shuffle_seed: int,
    batches_per_call: int = 1,
) -> DataLoader:
    """The loader a DataModule hands Lightning for ``stage`` (train | val | test | predict).

    ``train`` yields groups of ``batches_per_call`` batches, reshuffles each epoch from
    ``shuffle_seed`` and, when resuming mid-epoch, skips the batches already done;
    ``val``/``test`` yield single batches in order. Under distributed
    training every stage but ``predict`` takes this rank's shard. ``predict`` serves the
    test split.
    """
    shard = {}
    if trainer is not None and stage != "predict":
        shard = {"rank": trainer.global_rank, "world_size": trainer.world_size}
    if stage == "train":
        loader = tensor_loader(
            *splits["train"],
            batch_size,
            shuffle=True,
            seed=shuffle_seed,
            batches_per_call=batches_per_call,
            **shard,
        )
        loader.sampler.skip = resume_position(trainer, loader.sampler.n_batches)
        return loader
    return tensor_loader(*splits["test" if stage == "predict" else stage], eval_batch_size, **shard)


class SplitLoaders:
    """The loader hooks of a DataModule whose splits are in-memory tensors.

    Mixed into a ``LightningDataModule`` that sets ``splits`` (``{"train"|"val"|"test":
    (x, y)}``), ``batch_size``, ``eval_batch_size``, ``shuffle_seed`` and
    ``batches_per_call``; see :func:`split_loader` for what each stage gets.
    """

    splits: dict[str, tuple[torch.Tensor, torch.Tensor]]
    batch_size: int
    eval_batch_size: int
    shuffle_seed: int
    batches_per_call: int
    trainer: L.Trainer | None

    def _loader(self, stage: str) -> DataLoader:
        args = (
            self.trainer,
            self.batch_size,
            self.eval_batch_size,
            self.shuffle_seed,
            self.batches_per_call,
        )
        return split_loader(self.splits, stage, *args)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train")

    def val_dataloader(self) -> DataLoader:
        return self._loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._loader("test")

    def predict_dataloader(self) -> DataLoader:
        return self._loader("predict")

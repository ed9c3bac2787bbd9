"""``FileDataModule``: one long series from a CSV/Parquet file, split in time, scaled, windowed.

The rows are split chronologically into train/val/test (fractions, counts, or two dates
where val and test begin); each split is cut into stride-1 windows of ``n_steps`` inputs
from its own rows only, so no target of a training window lies in val or test. Scaling is
fitted on the training rows only. Model input feature 0 is the ``target`` column, then
``inputs`` in order (the naive model and iterative forecasts use feature 0).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from itertools import pairwise
from typing import Any

import numpy as np
import torch

from seqforecast.data.scaling import Scaler
from seqforecast.data.splits import STAGES, SplitDataModule, resolve_split
from seqforecast.data.table import Table, load_table
from seqforecast.data.windows import FLOAT32, check_window, make_windows, window_bytes
from seqforecast.errors import InputError
from seqforecast.rules import check


def series_windows(
    rows: np.ndarray, n_steps: int, horizon: int, target: str
) -> tuple[np.ndarray, np.ndarray]:
    """Every stride-1 window of one series ``rows [R, F]`` -> ``x [R - n_steps - horizon + 1,
    n_steps, F]`` and ``y`` (``[N, k]`` next, ``[N, n_steps, k]`` seq2seq) of feature 0."""
    length = n_steps + horizon
    windows = np.lib.stride_tricks.sliding_window_view(rows, length, axis=0)  # [N, F, L]
    return make_windows(np.ascontiguousarray(windows.transpose(0, 2, 1)), n_steps, horizon, target)


class FileDataModule(SplitDataModule):
    """A table's ``target`` (plus ``inputs``) as one series, chronologically split and scaled.

    ``split``: three fractions, three row counts or two dates
    (:func:`~seqforecast.data.splits.resolve_split`). Batches: ``x [B, n_steps, 1 +
    len(inputs)]`` (scaled; feature 0 is the target) and ``y [B, k]``
    (``target_kind="next"``) or ``[B, n_steps, k]`` (``"seq2seq"``), scaled. The fitted
    scaler travels in checkpoints through ``state_dict()`` as plain numbers.
    """

    LOWER = "n_steps or horizon, or use a shorter file"

    def __init__(
        self,
        path: str = "sine.csv",
        target: str = "value",
        inputs: Sequence[str] = (),
        time: str | None = None,
        split: Sequence[Any] = (0.7, 0.2, 0.1),
        scaling: str = "standard",
        fill: str | None = None,
        n_steps: int = 50,
        horizon: int = 1,
        target_kind: str = "next",
        batch_size: int = 32,
        eval_batch_size: int = 1024,
        shuffle_seed: int = 42,
    ) -> None:
        super().__init__(batch_size, eval_batch_size, shuffle_seed)
        check_window(n_steps, horizon, target_kind, target_key="data.target_kind")
        self.path = str(check("data.path", path))
        self.target = check("data.target", target)
        inputs = list(check("data.inputs", inputs))  # stored as a list
        self.inputs = inputs
        self.time = check("data.time", time)
        self.split = list(check("data.split", split))
        self.fill = check("data.fill", fill)
        self.scaler = Scaler(scaling)
        # Plain values for the checkpoint. The column is stored as ``target_column``: Lightning
        # refuses a datamodule hparam ``target`` that differs from the model's (next|seq2seq).
        self.save_hyperparameters(ignore=["target"])
        self.hparams["target_column"] = target
        self.n_steps, self.horizon, self.target_kind = n_steps, horizon, target_kind
        self.columns = [target, *self.inputs]
        self.n_features = len(self.columns)
        self.table: Table | None = None

    def read(self) -> Table:
        """The validated table (read once)."""
        if self.table is None:
            self.table = load_table(self.path, self.columns, self.time, self.fill)
        return self.table

    def split_sizes(self) -> tuple[int, int, int]:
        """Rows per split of the file; each must hold one window of ``n_steps + horizon``."""
        table = self.read()
        n = len(table.values)
        sizes = resolve_split(self.split, n, f"the {n} rows of {self.path}", table.times)
        need = self.n_steps + self.horizon
        for name, size in zip(STAGES, sizes, strict=True):
            if size < need:
                fractions = all(isinstance(s, float) for s in self.split) and len(self.split) == 3
                hint = (
                    f"; with data.split={self.split} the file needs at least "
                    f"{max(math.ceil(need / f) for f in self.split)} rows"
                    if fractions
                    else ""
                )
                raise InputError(
                    f"{self.path}: the {name} split has {size} of {n} rows, fewer than "
                    f"n_steps + horizon = {need} rows for one window{hint}"
                )
        return sizes

    def memory_bytes(self, sizes: Sequence[int]) -> int:
        """About the peak bytes of :meth:`cut` for splits of ``sizes`` rows: every split's
        windows twice (numpy, then the tensors kept) plus the largest split's ``[N, L, F]``."""
        length = self.n_steps + self.horizon
        n = [max(size - length + 1, 0) for size in sizes]  # windows per split
        kept = window_bytes(sum(n), self.n_steps, self.horizon, self.n_features, self.target_kind)
        largest = window_bytes(
            max(n), self.n_steps, self.horizon, self.n_features, self.target_kind
        )
        return kept + largest + FLOAT32 * max(n) * length * self.n_features

    def memory_use(self, sizes: Sequence[int]) -> str:
        return (
            f"{self.path}: the windows of n_steps={self.n_steps}, horizon={self.horizon} "
            f"({self.target_kind}) over its {sum(sizes)} rows x {self.n_features} columns"
        )

    def cut(self, bounds: tuple[int, int, int, int]) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Fit the scaler on the training rows, scale every row, window each split's own rows."""
        values = self.read().values  # [rows, F]
        self.scaler.fit(values[: bounds[1]])
        scaled = self.scaler.transform(values)  # [rows, F]
        splits = []
        for lo, hi in pairwise(bounds):
            x, y = series_windows(scaled[lo:hi], self.n_steps, self.horizon, self.target_kind)
            splits.append((torch.tensor(x), torch.tensor(y)))  # copies: views are read-only
        return splits

    def state_dict(self) -> dict[str, Any]:
        """The fitted scaler and columns, plain values (saved in every checkpoint)."""
        if self.scaler.center is None:
            return {}
        return {"scaler": self.scaler.to_dict(), "columns": list(self.columns)}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if "scaler" in state_dict:
            self.scaler = Scaler.from_dict(state_dict["scaler"])

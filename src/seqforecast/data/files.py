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
from typing import Any

import lightning as L
import numpy as np
import pandas as pd
import torch

from seqforecast.data.batches import SplitLoaders
from seqforecast.data.scaling import Scaler
from seqforecast.data.table import FILLS, Table, load_table
from seqforecast.data.windows import (
    FLOAT32,
    check_memory,
    check_window,
    make_windows,
    window_bytes,
)
from seqforecast.errors import ConfigError, InputError

STAGES = ("train", "val", "test")


def split_rows(split: Sequence[Any], n_rows: int, times: pd.Series | None) -> tuple[int, int, int]:
    """Rows per split from three fractions (sum 1), three counts (sum ``n_rows``) or two dates.

    Dates ``[val_start, test_start]``: train is every row before ``val_start``, val the rows
    from ``val_start`` up to ``test_start``, test the rest (needs ``data.time``).
    """
    split = list(split)
    if len(split) == 2 and all(isinstance(s, str) for s in split):
        if times is None or not pd.api.types.is_datetime64_any_dtype(times):
            raise ConfigError(
                f"data.split={split} gives dates, which needs a date column in data.time"
            )
        try:
            val_start, test_start = (pd.Timestamp(s) for s in split)
        except ValueError as err:
            raise ConfigError(f"data.split={split}: not dates ({err})") from None
        if not val_start < test_start:
            raise ConfigError(f"data.split={split}: the val start must come before the test start")
        train = int((times < val_start).sum())
        val = int((times < test_start).sum()) - train
        return train, val, n_rows - train - val
    if len(split) != 3 or any(isinstance(s, bool) or not isinstance(s, int | float) for s in split):
        raise ConfigError(
            f"data.split={split} must be three fractions, three counts or two dates "
            "[val_start, test_start]"
        )
    if all(isinstance(s, int) for s in split):
        if sum(split) != n_rows or min(split) < 1:
            raise ConfigError(
                f"data.split={split} must be three positive counts summing to the {n_rows} rows"
            )
        return split[0], split[1], split[2]
    if abs(sum(split) - 1.0) > 1e-6 or not all(0 < s < 1 for s in split):
        raise ConfigError(f"data.split={split}: fractions must lie in (0, 1) and sum to 1")
    train, val = round(split[0] * n_rows), round(split[1] * n_rows)
    return train, val, n_rows - train - val


def series_windows(
    rows: np.ndarray, n_steps: int, horizon: int, target: str
) -> tuple[np.ndarray, np.ndarray]:
    """Every stride-1 window of one series ``rows [R, F]`` -> ``x [R - n_steps - horizon + 1,
    n_steps, F]`` and ``y`` (``[N, k]`` next, ``[N, n_steps, k]`` seq2seq) of feature 0."""
    length = n_steps + horizon
    windows = np.lib.stride_tricks.sliding_window_view(rows, length, axis=0)  # [N, F, L]
    return make_windows(np.ascontiguousarray(windows.transpose(0, 2, 1)), n_steps, horizon, target)


class FileDataModule(SplitLoaders, L.LightningDataModule):
    """A table's ``target`` (plus ``inputs``) as one series, chronologically split and scaled.

    Batches: ``x [B, n_steps, 1 + len(inputs)]`` (scaled; feature 0 is the target) and
    ``y [B, k]`` (``target_kind="next"``) or ``[B, n_steps, k]`` (``"seq2seq"``), scaled.
    The fitted scaler travels in checkpoints through ``state_dict()`` as plain numbers.
    """

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
        super().__init__()
        check_window(n_steps, horizon, target_kind)
        if not isinstance(target, str) or not target:
            raise ConfigError(f"data.target must be a column name, got {target!r}")
        inputs = list(inputs)
        if not all(isinstance(c, str) and c for c in inputs):
            raise ConfigError(f"data.inputs must be a list of column names, got {inputs!r}")
        if fill is not None and fill not in FILLS:
            raise ConfigError(f"data.fill must be null or one of {list(FILLS)}, got {fill!r}")
        self.scaler = Scaler(scaling)
        # Plain values for the checkpoint. The column is stored as ``target_column``: Lightning
        # refuses a datamodule hparam ``target`` that differs from the model's (next|seq2seq).
        self.save_hyperparameters(ignore=["target"])
        self.hparams["target_column"] = target
        self.path, self.target, self.inputs, self.time = str(path), target, inputs, time
        self.split, self.fill = list(split), fill
        self.n_steps, self.horizon, self.target_kind = n_steps, horizon, target_kind
        self.batch_size, self.eval_batch_size, self.shuffle_seed = (
            batch_size,
            eval_batch_size,
            shuffle_seed,
        )
        self.columns = [target, *inputs]
        self.n_features = len(self.columns)
        self.splits: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        self.bounds: tuple[int, int, int, int] | None = None
        self.table: Table | None = None

    def read(self) -> Table:
        """The validated table (read once)."""
        if self.table is None:
            self.table = load_table(self.path, self.columns, self.time, self.fill)
        return self.table

    def setup(self, stage: str | None = None) -> None:
        """Read, split in time, fit the scaler on train rows, cut windows; later calls no-ops."""
        if self.splits:
            return
        table = self.read()
        n = len(table.values)
        sizes = split_rows(self.split, n, table.times)
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
        self.check_memory(sizes)
        bounds = np.cumsum((0, *sizes))
        self.bounds = tuple(int(b) for b in bounds)  # type: ignore[assignment]
        self.scaler.fit(table.values[: bounds[1]])
        scaled = self.scaler.transform(table.values)  # [rows, F]
        for name, lo, hi in zip(STAGES, bounds[:-1], bounds[1:], strict=True):
            x, y = series_windows(scaled[lo:hi], self.n_steps, self.horizon, self.target_kind)
            self.splits[name] = (torch.tensor(x), torch.tensor(y))  # copies: views are read-only

    def memory_bytes(self, sizes: Sequence[int]) -> int:
        """About the peak bytes of :meth:`setup` for splits of ``sizes`` rows: every split's
        windows twice (numpy, then the tensors kept) plus the largest split's ``[N, L, F]``."""
        length = self.n_steps + self.horizon
        n = [max(size - length + 1, 0) for size in sizes]  # windows per split
        kept = window_bytes(sum(n), self.n_steps, self.horizon, self.n_features, self.target_kind)
        largest = window_bytes(
            max(n), self.n_steps, self.horizon, self.n_features, self.target_kind
        )
        return kept + largest + FLOAT32 * max(n) * length * self.n_features

    def check_memory(self, sizes: Sequence[int]) -> None:
        """Refuse windows that would not fit in the memory available, before cutting them."""
        check_memory(
            self.memory_bytes(sizes),
            f"{self.path}: the windows of n_steps={self.n_steps}, horizon={self.horizon} "
            f"({self.target_kind}) over its {sum(sizes)} rows x {self.n_features} columns",
            "n_steps or horizon, or use a shorter file",
        )

    def arrays(self, stage: str) -> tuple[np.ndarray, np.ndarray]:
        """The scaled ``(x, y)`` numpy arrays of one split (``train``, ``val`` or ``test``)."""
        self.setup()
        x, y = self.splits[stage]
        return x.numpy(), y.numpy()

    def original_unit_errors(self, model: L.LightningModule) -> dict[str, float]:
        """``{val,test}/{mae,rmse}`` of ``model``'s last-step ``k`` forecasts in the data's units.

        The module logs MSE on scaled values; here the forecasts ``[N, k]`` and their
        targets are mapped back through the training scaler (target column) first.
        """
        out = {}
        model.eval()
        with torch.inference_mode():
            for stage in ("val", "test"):
                x, y = self.arrays(stage)
                pred = model.forecast(torch.from_numpy(x).to(model.device)).cpu().numpy()
                actual = y[:, -1] if self.target_kind == "seq2seq" else y  # [N, k]
                err = self.scaler.inverse(pred) - self.scaler.inverse(actual)
                out[f"{stage}/mae"] = float(np.abs(err).mean())
                out[f"{stage}/rmse"] = float(np.sqrt((err**2).mean()))
        return out

    def state_dict(self) -> dict[str, Any]:
        """The fitted scaler and columns, plain values (saved in every checkpoint)."""
        if self.scaler.center is None:
            return {}
        return {"scaler": self.scaler.to_dict(), "columns": list(self.columns)}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if "scaler" in state_dict:
            self.scaler = Scaler.from_dict(state_dict["scaler"])

"""``FileDataModule``: one long series from a CSV/Parquet file, split in time, scaled, windowed.

The rows are split chronologically into train/val/test (fractions, counts, or two dates
where val and test begin) and cut into stride-1 windows of ``n_steps`` inputs
(:func:`split_origins`): a training window lies wholly in the training rows, inputs and
every target; a val (test) window is one whose forecast targets, the ``k`` rows after its
last input, lie in the val (test) rows, its inputs taken from any rows before them. So every
val and test row is forecast from the history before it (with ``k = 1``, each exactly once),
and no target of a training window lies in val or test. Scaling is fitted on the training
rows only. Model input feature 0 is the ``target`` column, then ``inputs`` in order (the
naive model and iterative forecasts use feature 0).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
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
    rows: np.ndarray, n_steps: int, horizon: int, target: str, origins: range
) -> tuple[np.ndarray, np.ndarray]:
    """The stride-1 windows of one series ``rows [R, F]`` at ``origins`` (consecutive) ->
    ``x [N, n_steps, F]`` and ``y`` (``[N, k]`` next, ``[N, n_steps, k]`` seq2seq) of feature 0.

    A window's origin is the row of its last input: window ``o`` has inputs ``rows[o -
    n_steps + 1 : o + 1]`` and forecast targets ``rows[o + 1 : o + 1 + k, 0]``.
    """
    length = n_steps + horizon
    windows = np.lib.stride_tricks.sliding_window_view(rows, length, axis=0)  # [R - L + 1, F, L]
    windows = windows[origins.start - n_steps + 1 : origins.stop - n_steps + 1]  # [N, F, L]
    return make_windows(np.ascontiguousarray(windows.transpose(0, 2, 1)), n_steps, horizon, target)


def split_origins(bounds: Sequence[int], n_steps: int, horizon: int) -> list[range]:
    """The forecast origins (row of the last input) of the train, val and test windows.

    ``bounds = (0, train, train + val, rows)``. Training windows lie wholly in the training
    rows: origins ``n_steps - 1 .. train - k - 1``. A val (test) window is one whose ``k``
    forecast targets lie in the val (test) rows: origins ``lo - 1 .. hi - k - 1`` for the
    split's rows ``lo:hi``, i.e. ``hi - lo - k + 1`` windows, the first forecast from the row
    before the split; their inputs are earlier rows, known at the origin.
    """
    _, train, val_end, rows = bounds
    return [
        range(n_steps - 1, train - horizon),
        range(train - 1, val_end - horizon),
        range(val_end - 1, rows - horizon),
    ]


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

    def split_needs(self) -> tuple[int, int, int]:
        """The fewest rows of each split: one training window (``n_steps + horizon``, which
        is also the history the first val forecast reads), one forecast of ``horizon``."""
        return self.n_steps + self.horizon, self.horizon, self.horizon

    def split_sizes(self) -> tuple[int, int, int]:
        """Rows per split of the file, each at least :meth:`split_needs`."""
        table = self.read()
        n = len(table.values)
        sizes = resolve_split(self.split, n, f"the {n} rows of {self.path}", table.times)
        needs = self.split_needs()
        for name, size, need in zip(STAGES, sizes, needs, strict=True):
            if size < need:
                what = (
                    f"n_steps + horizon = {need} rows for one training window"
                    if name == "train"
                    else f"horizon = {need} rows for one forecast"
                )
                raise InputError(
                    f"{self.path}: the {name} split has {size} of {n} rows, fewer than "
                    f"{what}{self._rows_hint(needs)}"
                )
        return sizes

    def _rows_hint(self, needs: Sequence[int]) -> str:
        """With three fractions: the fewest rows a file needs to give every split its rows."""
        if not (len(self.split) == 3 and all(isinstance(f, float) for f in self.split)):
            return ""
        # resolve_split rounds train and val (the test rest is off by up to a row), so a split
        # of fraction f holds `need` rows from n >= (need - 1) / f at the earliest: scan up.
        rows = max(1, *(math.floor((n - 1) / f) for n, f in zip(needs, self.split, strict=True)))
        while np.less(resolve_split(self.split, rows, ""), needs).any():
            rows += 1
        return f"; with data.split={self.split} the file needs at least {rows} rows"

    def memory_bytes(self, sizes: Sequence[int]) -> int:
        """About the peak bytes of :meth:`cut` for splits of ``sizes`` rows: every split's
        windows (the tensors kept), plus the largest split's numpy windows and ``[N, L, F]``.

        Windows per split: ``train - n_steps - k + 1`` and ``rows - k + 1`` for val and test.
        """
        length = self.n_steps + self.horizon
        bounds = np.cumsum([0, *sizes]).tolist()
        origins = split_origins(bounds, self.n_steps, self.horizon)
        n = [len(o) for o in origins]  # windows per split
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
        """Fit the scaler on the training rows, scale every row, cut each split's windows
        (:func:`split_origins`)."""
        values = self.read().values  # [rows, F]
        self.scaler.fit(values[: bounds[1]])
        scaled = self.scaler.transform(values)  # [rows, F]
        splits = []
        for origins in split_origins(bounds, self.n_steps, self.horizon):
            end = origins.stop + self.horizon  # past the split's last target: no later row is read
            x, y = series_windows(
                scaled[:end], self.n_steps, self.horizon, self.target_kind, origins
            )
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

"""``FileDataModule``: the series of a CSV/Parquet file (one, or a long table of many), split
in time, scaled, windowed lazily.

Each series' rows are split chronologically into train/val/test (fractions or counts per
series, or two dates where val and test begin, shared by all) and cut into stride-1 windows
of ``n_steps`` inputs (:func:`split_origins`): a training window lies wholly in the training
rows, inputs and every target; a val (test) window is one whose forecast targets, the ``k``
rows after its last input, lie in the val (test) rows, its inputs taken from any rows before
them. So every val and test row is forecast from the history before it (with ``k = 1``, each
exactly once), and no target of a training window lies in val or test. Scaling is fitted on
the training rows only: per series (``scaling_scope=series``) or over all series
(``global``), after the target transform (``transform``: log, boxcox; one for all
series). Windows are index arithmetic over the stored rows
(:class:`~seqforecast.data.lazy.Windows`), gathered per batch.

Model input feature 0 is the ``target`` column, then ``inputs``, ``future_inputs`` and the
``calendar`` features in order (the naive model and iterative forecasts use feature 0);
known-future features (``future_inputs`` and ``calendar``) also reach each input step for
the ``k`` rows it forecasts (:mod:`seqforecast.data.lazy`).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from seqforecast.data.lazy import Windows, window_features
from seqforecast.data.panel import (
    Panel,
    calendar_features,
    calendar_names,
    load_panel,
    series_label,
)
from seqforecast.data.scaling import Scaler
from seqforecast.data.splits import STAGES, SplitDataModule, resolve_split
from seqforecast.data.transforms import TargetTransform
from seqforecast.data.windows import FLOAT32, check_window
from seqforecast.errors import ConfigError, InputError
from seqforecast.rules import check

log = logging.getLogger(__name__)


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
    """A table's ``target`` (plus inputs) as one series, or as many (``id`` columns), each
    chronologically split and scaled.

    ``split``: three fractions or row counts (per series) or two dates (shared)
    (:func:`~seqforecast.data.splits.resolve_split`). Batches: ``x [B, n_steps, F]`` (scaled;
    feature 0 is the target; ``F = 1 + len(inputs) + P + k * P`` with ``P`` known-future
    features) and ``y [B, k]`` (``target_kind="next"``) or ``[B, n_steps, k]``
    (``"seq2seq"``), scaled. A panel's series too short for one window in each split are
    skipped and listed in ``skipped`` (and the log). The fitted scaling travels in
    checkpoints through ``state_dict()`` as plain numbers. ``season`` (steps in one season,
    :mod:`seqforecast.auto`) is only kept in the saved settings, for backtests and baselines.

    Args:
        path: The CSV or Parquet file.
        target: The column to forecast (model feature 0).
        inputs: Further columns read as input features (known up to the origin).
        time: The time column (ordering, date splits, calendar features); ``None``: row order.
        split: Train/val/test: three fractions or row counts per series, or two dates where
            val and test begin.
        scaling: ``standard``, ``minmax`` or ``none``.
        fill: Missing values: ``ffill``, ``interpolate`` or ``drop``; ``None``: refused.
        n_steps: Input steps per window ``T``.
        horizon: Steps forecast per window ``k``.
        target_kind: ``next`` (``y [B, k]``) or ``seq2seq`` (``y [B, n_steps, k]``).
        batch_size: Training windows per batch.
        eval_batch_size: Val, test and predict windows per batch.
        shuffle_seed: Seed of the training loader's shuffle.
        id: The id column(s) of a long table of many series; ``None``: one series.
        scaling_scope: A panel's scaling: per ``series`` or ``global``.
        future_inputs: Columns known in advance, read for the forecast steps too.
        calendar: Calendar features derived from ``time`` (e.g. ``dayofweek``).
        transform: Target transform before the scaling: ``none``, ``log`` or ``boxcox``.
        boxcox_lambda: A fixed Box-Cox lambda; ``None``: fitted on the training rows.
        season: Steps in one season, kept for backtests and baselines.

    Raises:
        ConfigError: A setting is not allowed, or the settings do not fit together.
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
        id: str | Sequence[str] | None = None,
        scaling_scope: str = "series",
        future_inputs: Sequence[str] = (),
        calendar: Sequence[str] = (),
        transform: str = "none",
        boxcox_lambda: float | None = None,
        season: int = 1,
    ) -> None:
        super().__init__(batch_size, eval_batch_size, shuffle_seed)
        check_window(n_steps, horizon, target_kind, target_key="data.target_kind")
        self.path = str(check("data.path", path))
        self.target = check("data.target", target)
        self.inputs = list(check("data.inputs", inputs))  # stored as lists
        self.time = check("data.time", time)
        self.split = list(check("data.split", split))
        self.fill = check("data.fill", fill)
        transform = check("data.transform", transform)
        boxcox_lambda = check("data.boxcox_lambda", boxcox_lambda)
        if boxcox_lambda is not None and transform != "boxcox":
            raise ConfigError(
                f"data.boxcox_lambda={boxcox_lambda} fixes the Box-Cox lambda, but "
                f"data.transform={transform}; set data.transform=boxcox or boxcox_lambda=null"
            )
        self.scaler = Scaler(scaling, TargetTransform(transform, boxcox_lambda))
        id = check("data.id", id)
        self.ids = [id] if isinstance(id, str) else list(id or [])
        self.scaling_scope = check("data.scaling_scope", scaling_scope)
        self.future_inputs = list(check("data.future_inputs", future_inputs))
        self.calendar = list(check("data.calendar", calendar))
        self.season = check("season", season)  # the series' season (seqforecast.auto)
        if self.calendar and not self.time:
            raise ConfigError(
                f"data.calendar={self.calendar} derives features from the time column; "
                "set data.time"
            )
        # Plain values for the checkpoint. The column is stored as ``target_column``: Lightning
        # refuses a datamodule hparam ``target`` that differs from the model's (next|seq2seq).
        self.save_hyperparameters(ignore=["target", "id"])
        self.hparams["target_column"] = target
        self.hparams["id"] = list(self.ids)
        self.n_steps, self.horizon, self.target_kind = n_steps, horizon, target_kind
        self.columns = [target, *self.inputs, *self.future_inputs]  # read from the file
        self.features = [*self.columns, *calendar_names(self.calendar)]  # per row
        self.future = list(range(1 + len(self.inputs), len(self.features)))  # known-future
        self.n_features = window_features(len(self.features), horizon, len(self.future))
        self.panel: Panel | None = None
        self.keys: list[tuple[str, ...]] = []  # the series kept, in order
        self.skipped: list[str] = []  # the series too short for one window per split
        self.kept: list[tuple[int, tuple[int, int, int]]] | None = None  # series_splits()

    def read(self) -> Panel:
        """The validated series with their calendar features (read once).

        Returns:
            The series' rows, ids and times, as read.

        Raises:
            InputError: The file is missing, unreadable, or its columns or values are not
                what the settings name.
        """
        if self.panel is None:
            panel = load_panel(self.path, self.columns, self.time, self.fill, self.ids)
            if self.calendar:
                cal = [calendar_features(t, self.calendar, self.time) for t in panel.times]
                panel.values = np.concatenate([panel.values, np.concatenate(cal)], axis=1)
                panel.columns = list(self.features)
            self.panel = panel
        return self.panel

    def label(self, s: int) -> str:
        """Series ``s`` of the file as errors and tables name it (the file for one series)."""
        key = self.read().keys[s]
        return f"series {series_label(self.ids, key)}" if self.ids else self.path

    def split_needs(self) -> tuple[int, int, int]:
        """The fewest rows of each split: one training window (``n_steps + horizon``, which
        is also the history the first val forecast reads), one forecast of ``horizon``."""
        return self.n_steps + self.horizon, self.horizon, self.horizon

    def series_split(self, s: int) -> tuple[int, int, int]:
        """Rows per split of series ``s`` (:func:`~seqforecast.data.splits.resolve_split`)."""
        panel = self.read()
        n, times = int(panel.lengths[s]), None if panel.times is None else panel.times[s]
        return resolve_split(self.split, n, f"the {n} rows of {self.label(s)}", times)

    def series_splits(self) -> list[tuple[int, tuple[int, int, int]]]:
        """``(series, rows per split)`` of each series kept: every split at least
        :meth:`split_needs` rows. One series too short is an error; a panel's are skipped
        (and reported once: the result is kept)."""
        if self.kept is not None:
            return self.kept
        panel = self.read()
        kept, skipped, needs = [], [], self.split_needs()
        for s, n in enumerate(panel.lengths.tolist()):
            sizes = self.series_split(s)
            short = [(st, z, nd) for st, z, nd in zip(STAGES, sizes, needs, strict=True) if z < nd]
            if not short:
                kept.append((s, sizes))
            elif not self.ids:
                name, size, need = short[0]
                what = (
                    f"n_steps + horizon = {need} rows for one training window"
                    if name == "train"
                    else f"horizon = {need} rows for one forecast"
                )
                raise InputError(
                    f"{self.path}: the {name} split has {size} of {n} rows, fewer than "
                    f"{what}{self._rows_hint(needs)}"
                )
            else:
                skipped.append(f"{series_label(self.ids, panel.keys[s])} ({n} rows)")
        if skipped:
            log.warning(
                "%s: skipped %d of %d series too short for one window in each split "
                "(n_steps + horizon = %d training rows, horizon = %d val and test rows): %s",
                self.path, len(skipped), len(panel.keys), needs[0], needs[1],
                ", ".join(skipped[:10]) + (" ..." if len(skipped) > 10 else ""),
            )  # fmt: skip
        if not kept:
            raise InputError(
                f"{self.path}: all {len(panel.keys)} series are too short for one window in "
                f"each split with n_steps={self.n_steps}, horizon={self.horizon}, "
                f"data.split={self.split}"
            )
        self.skipped, self.kept = skipped, kept
        return kept

    def split_sizes(self) -> tuple[int, int, int]:
        """Rows per split, summed over the series kept."""
        sizes = np.sum([z for _, z in self.series_splits()], axis=0)
        return int(sizes[0]), int(sizes[1]), int(sizes[2])

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
        """About the peak bytes of :meth:`cut`: the rows twice (read and scaled), and for
        evaluation each val/test window's ``k`` targets, series and forecast."""
        rows = sum(sizes)
        evaluated = max(sizes[1], sizes[2])  # windows of val or test: at most their rows
        return FLOAT32 * 2 * rows * len(self.features) + evaluated * (
            8 + 3 * FLOAT32 * self.horizon
        )

    def memory_use(self, sizes: Sequence[int]) -> str:
        return (
            f"{self.path}: its {sum(sizes)} rows x {len(self.features)} features and the "
            f"forecasts of horizon={self.horizon}"
        )

    def cut(self, bounds: tuple[int, int, int, int]) -> list[Windows]:
        """Fit the scaling on the training rows, scale every row, and index each split's
        windows (:func:`split_origins`) per series."""
        panel, kept = self.read(), self.series_splits()
        for s, _ in kept:  # every row is transformed: the first that cannot be, by name
            times, n = (None if panel.times is None else panel.times[s]), panel.lengths[s]

            def row(i: int, times: Any = times, n: int = n) -> str:
                when = "" if times is None else f", {self.time} {times.iloc[i]}"
                return f"row {i + 1} of its {n}{when}"

            where = f"{self.label(s)}: the target column {self.target!r}"
            self.scaler.target.check(panel.rows(s)[:, 0], where, row)
        train_rows = [panel.rows(s)[: z[0]] for s, z in kept]
        if self.ids and self.scaling_scope == "series":
            self.scaler.fit_series(train_rows)
            scaled = [self.scaler.transform(panel.rows(s), i) for i, (s, _) in enumerate(kept)]
        else:
            self.scaler.fit(np.concatenate(train_rows))
            scaled = [self.scaler.transform(panel.rows(s)) for s, _ in kept]
        self.keys = [panel.keys[s] for s, _ in kept]
        starts = np.cumsum([0, *(len(r) for r in scaled)])
        rows = torch.from_numpy(np.concatenate(scaled))  # [R, F]: the series kept, in turn
        plans = [([], []) for _ in STAGES]  # (first origin, windows) per split and series
        for start, (_, sizes) in zip(starts, kept, strict=False):
            bounds_s = np.cumsum([0, *sizes]).tolist()
            for (first, counts), origins in zip(
                plans, split_origins(bounds_s, self.n_steps, self.horizon), strict=True
            ):
                first.append(start + origins.start)
                counts.append(len(origins))
        return [
            Windows(rows, first, counts, self.n_steps, self.horizon, self.target_kind, self.future)
            for first, counts in plans
        ]

    def to_units(self, values: np.ndarray, series: np.ndarray | None) -> np.ndarray:
        """Scaled target values ``[N, ...]`` of windows of ``series [N]`` in the data's units.

        Args:
            values: Scaled targets (or forecasts) ``[N, ...]``.
            series: The series index of each row ``[N]``, used when the scaling is per series.

        Returns:
            float64 values, shaped as ``values``.
        """
        return self.scaler.inverse(values, 0, series)  # series matters to per-series scaling

    def state_dict(self) -> dict[str, Any]:
        """The fitted scaler, features and (panels) the series' ids, plain values (saved in
        every checkpoint).

        Returns:
            ``{"scaler", "columns"[, "series"]}``; ``{}`` before the scaler is fitted.
        """
        if self.scaler.center is None:
            return {}
        state = {"scaler": self.scaler.to_dict(), "columns": list(self.features)}
        if self.ids:
            state["series"] = [list(k) for k in self.keys]
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        # A state saved before data.transform has no transform: none, as it was trained.
        if "scaler" in state_dict:
            self.scaler = Scaler.from_dict(state_dict["scaler"])

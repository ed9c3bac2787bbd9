"""The forecasting core: what every forecaster does, once, in numpy.

:class:`ForecastCore` holds what a forecast needs (the model's shapes, the data's settings,
the training scaling, the interval calibration, a panel's series ids) and implements the
input checks, the windows in batches, the direct forecast and the iterative loop beyond the
horizon (:func:`iterative_forecast`, on numpy arrays or torch tensors alike), interval bounds
(:class:`~seqforecast.intervals.Calibration`), scaling in and out of the data's units,
table rows and future timestamps (:func:`future_times`, calendar spacing included).

The seam: a front-end supplies only how it loads and

- ``forward(x)``: float32 scaled windows ``[B, T, F]`` (numpy) in, the network's direct
  forecast ``[B, k]`` out (numpy float32);
- for ``intervals=model|cqr``, ``forward_bounds(x, levels, method)``: the model's own
  quantile bounds ``[B, k, L, 2]`` (float64);
- optionally ``forward_series(x, series)``: ``forward`` told each window's row of a panel's
  per-series scaling (``series``: ``[B]`` indices, one index, or ``None`` when unknown), for a
  front-end that must see the data's units (an ensemble's statistical members).

:class:`~seqforecast.predict.forecaster.Forecaster` runs a checkpoint with torch,
:class:`~seqforecast.onnx.OnnxForecaster` an export with onnxruntime, and the HTTP service
(:mod:`seqforecast.serve.api`) calls the methods here, and
:class:`~seqforecast.ensemble.EnsembleForecaster` combines its members' in ``forward_series``.
This module imports neither torch nor pandas (pandas when future timestamps are asked for).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

import numpy as np
from tqdm.auto import tqdm

from seqforecast import intervals
from seqforecast.data.scaling import Scaler
from seqforecast.data.windows import FLOAT32
from seqforecast.errors import ConfigError, InputError
from seqforecast.memory import check_memory
from seqforecast.rules import check
from seqforecast.scores import level_name

WINDOWS = ("sliding", "growing")
# The default cap on ``ahead`` of the service and predict: an iterative forecast costs
# ahead/horizon forward passes, so a slip of the keyboard (ahead=100000) would run for minutes.
MAX_AHEAD = 1000
A = TypeVar("A")  # torch.Tensor or np.ndarray
Series = np.ndarray | int | None  # windows' rows of a per-series scaling: [N], one, unknown


def _cat(parts: list[A], axis: int) -> A:
    """``parts`` joined along ``axis``, in their own library."""
    if isinstance(parts[0], np.ndarray):
        return np.concatenate(parts, axis=axis)
    import torch

    return torch.cat(parts, dim=axis)


def check_ahead(ahead: int, window: str, horizon: int, n_features: int) -> None:
    """``ahead`` and ``window`` fit a model of ``horizon`` steps and ``n_features`` inputs:
    a positive integer, a known window, and past the horizon (iterative, feeding forecasts
    back as inputs) a univariate model. The one rule of every forecaster and the service."""
    if not isinstance(ahead, int | np.integer) or isinstance(ahead, bool) or ahead < 1:
        raise ConfigError(f"ahead must be an integer >= 1, got {ahead!r}")
    if window not in WINDOWS:
        raise ConfigError(f"window must be one of {list(WINDOWS)}, got {window!r}")
    if ahead > horizon and n_features != 1:
        raise ConfigError(
            f"ahead={ahead} exceeds the model's horizon {horizon}: iterative forecasts "
            f"feed predictions back, which needs a univariate model (n_features=1)"
        )


def check_max_ahead(ahead: int, max_ahead: int, owner: str) -> None:
    """``ahead`` up to ``max_ahead`` (the setting of ``owner``: "this service's", "predict's")."""
    if ahead > max_ahead:
        raise ConfigError(
            f"ahead={ahead} exceeds {owner} max_ahead={max_ahead}; forecast fewer steps or "
            "raise max_ahead"
        )


def check_direct(ahead: int, horizon: int, levels: Sequence[float]) -> None:
    """Intervals exist for a model's direct steps only: ``ahead`` past its ``horizon`` is
    refused in one line naming the ``levels`` asked for."""
    if ahead > horizon:
        raise ConfigError(
            f"levels={list(levels)}: intervals are calibrated for the model's direct forecast "
            f"of {horizon} steps, but ahead={ahead} is iterative; use ahead<={horizon} or "
            "levels=[]"
        )


def iterative_forecast(step: Callable[[A], A], x: A, ahead: int, window: str = "sliding") -> A:
    """Roll a ``k``-step forecaster forward ``ahead`` steps, feeding back its own predictions.

    ``step`` maps a window ``[B, T, 1]`` to its direct forecast ``[B, k]``. Each
    round appends the ``k`` predictions to the input and predicts again (the book's
    procedure, cells 38 and 44): ``window="sliding"`` always feeds the last ``T``
    steps (cell 38), ``"growing"`` feeds the whole extended input (cell 44; only
    for networks that accept any length). ``x`` and the result ``[B, ahead]`` are torch
    tensors or numpy arrays.
    """
    if window not in WINDOWS:
        raise InputError(f"window must be one of {list(WINDOWS)}, got {window!r}")
    if x.ndim != 3 or x.shape[-1] != 1:
        raise InputError(
            f"iterative forecasts feed predictions back as inputs, so x must be univariate "
            f"[n_series, n_steps, 1]; got shape {tuple(x.shape)}"
        )
    if ahead < 1:
        raise InputError(f"ahead must be >= 1, got {ahead}")
    n_steps = x.shape[1]
    history, preds, produced = x, [], 0
    while produced < ahead:
        inputs = history[:, -n_steps:] if window == "sliding" else history  # [B, T(+t), 1]
        y = step(inputs)  # [B, k]
        preds.append(y)
        produced += y.shape[1]
        history = _cat([history, y[..., None]], axis=1)  # [B, T + t + k, 1]
    return _cat(preds, axis=1)[:, :ahead]  # [B, ahead]


class ForecastCore:
    """A model's facts and every step of a forecast but the network's ``forward``.

    Args:
        hparams: The model's settings: ``n_steps``, ``horizon``, ``target``, ``n_features``,
            ``net`` (and, for a probabilistic model, ``loss`` and ``quantiles``).
        data: The DataModule settings of training, when known.
        scaler: File data: the scaler fitted on the training rows.
        calibration: The interval widths calibrated by ``train.py``, if any.
        series: A panel scaled per series: its training series (id values), in order.
        features: File data: the input columns, in order.
    """

    def __init__(
        self,
        hparams: dict[str, Any],
        data: dict[str, Any] | None = None,
        scaler: Scaler | None = None,
        calibration: intervals.Calibration | None = None,
        series: list[tuple[str, ...]] | None = None,
        features: list[str] | None = None,
    ) -> None:
        self.hparams = hparams
        self.n_steps, self.horizon = int(hparams["n_steps"]), int(hparams["horizon"])
        self.target, self.n_features = hparams["target"], int(hparams["n_features"])
        # The data's season: the module keeps it only for window_norm=seasonal (else 1).
        self.season = int((data or {}).get("season") or hparams.get("season") or 1)
        self.data, self.scaler, self.calibration = data, scaler, calibration
        self.series, self.features = series, features
        # Why window=growing is refused (a network of a fixed input length), or None.
        self.fixed = "the linear model has a fixed window" if hparams["net"] == "linear" else None
        self.last_history: np.ndarray | None = None  # [S, T] targets of the last forecast_table

    def forward(self, x: np.ndarray) -> np.ndarray:
        """The network's direct forecast: float32 ``[B, T, F] -> [B, k]`` (the front-end's)."""
        raise NotImplementedError

    def forward_series(self, x: np.ndarray, series: Series = None) -> np.ndarray:
        """``forward`` of windows whose per-series scaling rows are ``series`` (unused here)."""
        return self.forward(x)

    def forward_bounds(self, x: np.ndarray, levels: Sequence[float], method: str) -> np.ndarray:
        """The model's own bounds ``[B, k, L, 2]`` at ``levels`` (``model``/``cqr`` only)."""
        raise ConfigError(f"intervals={method} needs the model's quantiles, which it lacks")

    @property
    def file_data(self) -> bool:
        """Whether the model was trained on a file (``data=csv``), not on generated series."""
        return self.scaler is not None and self.data is not None and "path" in self.data

    @property
    def levels(self) -> list[float]:
        """The interval levels calibrated in the checkpoint (``[]``: none)."""
        return list(self.calibration.levels) if self.calibration else []

    def method(self, ahead: int, window: str = "sliding") -> str:
        """How ``ahead`` steps are forecast, in words (printed and written to metrics.json).

        Args:
            ahead: Steps forecast after each window.
            window: ``sliding`` or ``growing``: the input of the iterative rounds.

        Returns:
            E.g. ``direct (10-step model)`` or ``iterative, sliding window (...)``.
        """
        if ahead <= self.horizon:
            last = ", last time step's outputs" if self.target == "seq2seq" else ""
            return f"direct ({self.horizon}-step model{last})"
        rounds = -(-ahead // self.horizon)
        span = f"last {self.n_steps} steps" if window == "sliding" else "whole extended input"
        return f"iterative, {window} window ({rounds} rounds of {self.horizon}, feeding the {span})"

    def check_input(self, x: Any) -> None:
        """Shape and dtype against the model; one clear line when they do not fit.

        Args:
            x: Windows ``[N, n_steps]`` (univariate models) or ``[N, n_steps, F]``.

        Raises:
            InputError: The shape or dtype does not fit the model.
        """
        expected = f"[n_series, {self.n_steps}, {self.n_features}]"
        if self.n_features == 1:
            expected = f"[n_series, {self.n_steps}] or {expected}"
        shape, f = tuple(x.shape), self.n_features
        if not (len(shape) in (2, 3) and shape[0] >= 1 and shape[1] == self.n_steps) or (
            shape[2:] != (f,) if len(shape) == 3 else f != 1
        ):
            raise InputError(
                f"input windows have shape {shape}; this model expects {expected} "
                f"(n_steps={self.n_steps}, n_features={self.n_features})"
            )
        if not (np.issubdtype(x.dtype, np.floating) or np.issubdtype(x.dtype, np.integer)):
            raise InputError(f"input windows have dtype {x.dtype}; expected numbers")

    def check_options(self, ahead: int, window: str, batch_size: int = 1) -> None:
        """``ahead``, ``window`` and ``batch_size`` are valid, and fit this model.

        Args:
            ahead: Steps to forecast (>= 1; past the horizon only for univariate models).
            window: ``sliding`` or ``growing`` (not for a network of a fixed input length).
            batch_size: Windows per forward pass (>= 1).

        Raises:
            ConfigError: A value is not allowed, or does not fit this model.
        """
        check_ahead(ahead, window, self.horizon, self.n_features)
        if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
            raise ConfigError(f"batch_size must be a positive integer, got {batch_size!r}")
        if ahead > self.horizon and window == "growing" and self.fixed:
            raise ConfigError(
                f"window=growing feeds inputs longer than n_steps={self.n_steps}, but "
                f"{self.fixed}; use window=sliding"
            )

    def batches(self, x: Any, batch_size: int, progress: bool) -> Iterator[tuple[int, np.ndarray]]:
        """Yield ``(lo, x_batch)``: float32 ``[b, T, F]``, with a progress bar over series.

        Args:
            x: Windows ``[N, T]`` or ``[N, T, F]`` (checked by :meth:`check_input`).
            batch_size: Windows per batch.
            progress: Show a tqdm bar.

        Yields:
            The index of the batch's first window, and its float32 windows, contiguous.

        Raises:
            InputError: A window holds NaN or inf.
        """
        n = len(x)
        with tqdm(total=n, unit="series", desc="predict", disable=not progress) as bar:
            for lo in range(0, n, batch_size):
                batch = np.ascontiguousarray(x[lo : lo + batch_size], dtype=np.float32)
                if batch.ndim == 2:
                    batch = batch[..., np.newaxis]  # [b, T] -> [b, T, 1]
                bad = ~np.isfinite(batch).all(axis=(1, 2))
                if bad.any():
                    raise InputError(
                        f"input window {lo + int(np.argmax(bad))} holds NaN or inf; "
                        "expected finite numbers"
                    )
                yield lo, batch
                bar.update(len(batch))

    def windows(self, x: np.ndarray) -> np.ndarray:
        """Windows ``[N, T]`` or ``[N, T, F]``, checked (shape, numbers, finite) -> float32
        ``[N, T, F]``.

        Args:
            x: Windows ``[N, n_steps]`` (univariate models) or ``[N, n_steps, F]``.

        Returns:
            float32 ``[N, n_steps, F]``, contiguous.

        Raises:
            InputError: The shape or dtype does not fit the model, or a window holds NaN or inf.
        """
        x = np.asarray(x)
        self.check_input(x)
        return next(self.batches(x, len(x), False))[1]

    def predict(
        self,
        x: Any,
        ahead: int | None = None,
        window: str = "sliding",
        batch_size: int = 1024,
        progress: bool = False,
        series: Series = None,
    ) -> np.ndarray:
        """Forecast ``ahead`` steps (default: the trained horizon) after each window.

        ``x [N, T]`` or ``[N, T, F]`` (numpy, or rows streamed from a file) -> float32
        ``[N, ahead]``: the direct forecast (for seq2seq models the last time step's ``k``
        outputs) when ``ahead <= k``, else an iterative one that appends its predictions to
        the input and predicts again. Batches of ``batch_size`` windows run one at a time
        into a preallocated result, so memory holds one batch of activations whatever ``N``.

        Args:
            x: Windows ``[N, T]`` or ``[N, T, F]``, in the scale the model was trained on.
            ahead: Steps to forecast; ``None``: the trained horizon. More than the horizon
                forecasts iteratively (univariate models).
            window: Iterative input: ``sliding`` (the last ``n_steps`` values) or ``growing``
                (the whole extended input).
            batch_size: Windows per forward pass.
            progress: Show a progress bar over the windows.
            series: The windows' rows of a per-series scaling (``[N]`` or one index), for
                :meth:`forward_series`; ``None``: global or unknown.

        Returns:
            float32 ``[N, ahead]``.

        Raises:
            ConfigError: ``ahead``, ``window`` or ``batch_size`` is not allowed for this model,
                or the result would not fit in memory.
            InputError: ``x`` has the wrong shape or dtype, or holds NaN or inf.
        """
        ahead = self.horizon if ahead is None else ahead
        self.check_options(ahead, window, batch_size)
        x = x if hasattr(x, "shape") else np.asarray(x)
        self.check_input(x)
        # The result, and one batch's inputs grown by the iterative rounds (float32).
        grown = min(batch_size, len(x)) * (self.n_steps + ahead) * self.n_features
        check_memory(
            FLOAT32 * (len(x) * ahead + 2 * grown),
            f"forecasting ahead={ahead} steps for {len(x)} series",
            "ahead or batch_size",
        )
        out = np.empty((len(x), ahead), dtype=np.float32)
        for lo, batch in self.batches(x, batch_size, progress):
            rows = _rows(series, lo, len(batch))
            if ahead <= self.horizon:
                y = self.forward_series(batch, rows)[:, :ahead]  # [b, ahead]
            else:

                def step(w: np.ndarray, rows: Series = rows) -> np.ndarray:
                    return self.forward_series(w, rows)

                y = iterative_forecast(step, batch, ahead, window)  # [b, ahead]
            out[lo : lo + len(batch)] = y
        return out

    def predict_intervals(
        self,
        x: Any,
        ahead: int | None = None,
        levels: Sequence[float] | None = None,
        method: str | None = None,
        batch_size: int = 1024,
        progress: bool = False,
        calibration: intervals.Calibration | None = None,
        series: Series = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """The direct forecast and its interval bounds, ``batch_size`` windows at a time.

        Args:
            x: Windows ``[N, T]`` or ``[N, T, F]``, in the scale the model was trained on.
            ahead: Steps to forecast (at most the horizon); ``None``: the horizon.
            levels: Levels in percent; ``None``: the checkpoint's.
            method: ``conformal``, ``model`` or ``cqr``; ``None``: the checkpoint's.
            batch_size: Windows per forward pass.
            progress: Show a progress bar over the windows.
            calibration: The widths to use; ``None``: :meth:`calibration_for` ``levels``.
            series: The windows' rows of a per-series scaling (:meth:`predict`).

        Returns:
            ``(point [N, ahead], bounds [N, ahead, L, 2])`` (lo, hi), float32.

        Raises:
            ConfigError: ``ahead`` past the horizon, ``levels`` or ``method`` not allowed.
            InputError: ``x`` does not fit the model, or no calibration of ``levels`` exists.
        """
        ahead = self.horizon if ahead is None else ahead
        self.check_options(ahead, "sliding", batch_size)
        check_direct(ahead, self.horizon, self.levels if levels is None else levels)
        calibration = calibration or self.calibration_for(levels, method)
        levels, method = calibration.levels, calibration.method
        x = x if hasattr(x, "shape") else np.asarray(x)
        self.check_input(x)
        check_memory(
            FLOAT32 * len(x) * ahead * (1 + 2 * len(levels)),
            f"forecasting {len(x)} series with intervals at levels={levels}",
            "levels (or split the input)",
        )
        point = np.empty((len(x), ahead), np.float32)
        bounds = np.empty((len(x), ahead, len(levels), 2), np.float32)
        for lo, batch in self.batches(x, batch_size, progress):
            p = self.forward_series(batch, _rows(series, lo, len(batch)))[:, :ahead]  # [b, a]
            own = None
            if method != "conformal" and levels:
                own = self.forward_bounds(batch, levels, method)[:, :ahead]  # [b, ahead, L, 2]
            point[lo : lo + len(p)] = p
            bounds[lo : lo + len(p)] = calibration.bounds(p, own)
        return point, bounds

    def intervals_for(
        self, ahead: int, levels: Sequence[float] | None, method: str | None
    ) -> intervals.Calibration | None:
        """The calibration a forecast of ``ahead`` steps uses (``None``: no intervals).

        Args:
            ahead: Steps to forecast.
            levels: Levels in percent; ``None``: the checkpoint's when the forecast is direct
                (an iterative one has none); ``[]``: none.
            method: ``conformal``, ``model`` or ``cqr``; ``None``: the checkpoint's.

        Returns:
            The calibration of ``levels`` by ``method``, or ``None``.

        Raises:
            ConfigError: ``levels`` or ``method`` not allowed, or levels with ``ahead`` past
                the horizon.
            InputError: No calibration of ``levels`` by ``method`` exists or can be made.
        """
        if method is not None:
            check("intervals", method)
        if levels is None and (ahead > self.horizon or not self.levels):
            return None
        if levels is not None and not (levels := self.check_levels(levels, ahead)):
            return None
        return self.calibration_for(levels, method)

    def calibration_for(
        self, levels: Sequence[float] | None = None, method: str | None = None
    ) -> intervals.Calibration:
        """Widths of ``levels`` (default: the checkpoint's) by ``method`` (default: the
        checkpoint's, else ``conformal``): stored in the checkpoint, else :meth:`calibrate`.

        Args:
            levels: Levels in percent; ``None``: the checkpoint's.
            method: ``conformal``, ``model`` or ``cqr``; ``None``: the checkpoint's.

        Returns:
            The calibration of the sorted ``levels``.

        Raises:
            ConfigError: ``levels`` or ``method`` not allowed, or ``method`` not for this model.
            InputError: No calibration of ``levels`` by ``method`` exists or can be made.
        """
        stored = self.calibration
        method = method or (stored.method if stored else "conformal")
        levels = intervals.check_levels(self.levels if levels is None else levels)
        intervals.check_method(self, method, levels)
        if method == "model" or not levels:  # the model's own quantiles: nothing to calibrate
            return intervals.Calibration(method, levels, np.zeros((len(levels), self.horizon)), 0)
        if stored and stored.method == method and (found := stored.subset(levels)):
            return found
        return self.calibrate(levels, method)

    def calibrate(self, levels: list[float], method: str) -> intervals.Calibration:
        """Widths of ``levels`` the checkpoint lacks; here, where no data to calibrate on is
        known, a refusal (the torch ``Forecaster`` calibrates on a rebuilt val split)."""
        stored = self.calibration
        have = f"{stored.levels} by intervals={stored.method}" if stored else "none"
        raise InputError(
            f"levels={levels} intervals={method}: this checkpoint's calibrated intervals are "
            f"{have}, and it has no generated val split to calibrate others on; pick from "
            "those, or retrain with these levels and intervals"
        )

    def check_levels(self, levels: Sequence[float] | None, ahead: int) -> list[float]:
        """Sorted interval levels (``None``: none) for a forecast ``ahead`` steps: direct only.

        Args:
            levels: Levels in percent, or ``None``.
            ahead: Steps to forecast; intervals need ``ahead <= horizon``.

        Returns:
            The levels, sorted; ``[]`` when there are none.

        Raises:
            ConfigError: A level is not allowed, or ``ahead`` exceeds the horizon.
        """
        levels = intervals.check_levels(levels)
        if levels:
            check_direct(ahead, self.horizon, levels)
        return levels

    def series_index(self, series: Sequence[str] | str | None = None) -> int | None:
        """The row of the training scaling of the series with id values ``series``
        (``None``: the scaling is global).

        Args:
            series: The id values of one training series (a string for one id column);
                ignored when the scaling is global.

        Returns:
            The series' index among the training series, or ``None``.

        Raises:
            InputError: The model was scaled per series and ``series`` is not one of them.
        """
        if not self.scaler.per_series:
            return None
        known = self.series or []
        key = (series,) if isinstance(series, str) else tuple(map(str, series or ()))
        if key not in known:
            raise InputError(
                f"series {list(key)} is not among the {len(known)} series this model was "
                "trained on (it was scaled per series); pass series=<id values> of one of them"
            )
        return known.index(key)

    def to_units(
        self,
        point: np.ndarray,
        bounds: np.ndarray | None,
        levels: Sequence[float],
        series: np.ndarray | int | None = None,
    ) -> dict[str, np.ndarray]:
        """Scaled forecasts back to the data's units (float64, the shape of ``point``): the
        target column and, per level, ``lo-L``/``hi-L`` from ``bounds [..., L, 2]``."""
        inverse = self.scaler.inverse
        result = {self.data["target_column"]: inverse(point, 0, series)}
        for i, level in enumerate(levels):  # positive scale: lo stays below hi
            result[f"lo-{level_name(level)}"] = inverse(bounds[..., i, 0], 0, series)
            result[f"hi-{level_name(level)}"] = inverse(bounds[..., i, 1], 0, series)
        return result

    def forecast_rows(
        self,
        rows: np.ndarray,
        ahead: int | None = None,
        window: str = "sliding",
        levels: Sequence[float] = (),
        times: np.ndarray | None = None,
        series: Sequence[str] | str | None = None,
    ) -> dict[str, np.ndarray]:
        """Forecast ``ahead`` steps past the last of a file model's complete ``rows [R, F]``
        (the data's units, the training columns' order, ``R >= n_steps``): the last
        ``n_steps`` scaled, forecast, mapped back. Returns ``step``, the target column,
        ``lo-L``/``hi-L`` per level and, given ``times`` (one per row), the future times.
        ``series``: the id values of a panel scaled per series. Models with known-future
        inputs or calendar features are refused (scale and window those for :meth:`predict`).

        Args:
            rows: The series' rows ``[R, F]`` in the data's units, ``R >= n_steps``.
            ahead: Steps to forecast; ``None``: the horizon.
            window: Iterative input past the horizon: ``sliding`` or ``growing``.
            levels: Interval levels in percent among the calibrated ones; ``()``: none.
            times: One time per row (numbers or ``datetime64``, regularly spaced), or ``None``.
            series: A panel scaled per series: the id values of the rows' series.

        Returns:
            Column name -> ``[ahead]`` values, in the data's units.

        Raises:
            InputError: Not a file model, unknown ``series``, or ``rows``/``times`` that do
                not fit the model.
            ConfigError: A model with known-future inputs or calendar features, or
                ``ahead``, ``window`` or ``levels`` not allowed.
        """
        if not self.file_data:
            raise InputError("this model was not trained on a file (data=csv): use predict")
        extra = [k for k in ("future_inputs", "calendar") if self.data.get(k)]
        if extra:
            raise ConfigError(
                f"this model uses data.{extra[0]}={self.data[extra[0]]}: forecast_rows does not "
                "build known-future features; pass scaled windows to predict()"
            )
        index = self.series_index(series)
        ahead = self.horizon if ahead is None else ahead
        self.check_options(ahead, window)
        levels = self.check_levels(levels, ahead)
        rows = np.asarray(rows)
        if rows.ndim != 2 or rows.shape[1] != self.n_features or len(rows) < self.n_steps:
            raise InputError(
                f"rows have shape {rows.shape}; this model needs [>= {self.n_steps}, "
                f"{self.n_features}] (columns {self.features})"
            )
        recent = np.asarray(rows[-self.n_steps :], dtype=np.float32)  # [T, F], as a table holds
        first = len(rows) - self.n_steps  # the rows' place among those given

        def row(i: int) -> str:
            return f"row {first + i + 1} of {len(rows)}"

        self.scaler.target.check(recent[:, 0], "rows: the target column (feature 0)", row)
        x = self.windows(self.scaler.transform(recent, index)[np.newaxis])  # [1, T, F]
        if levels:
            point, bounds = self.predict_intervals(x, ahead, levels, series=index)
        else:
            point, bounds = self.predict(x, ahead, window, series=index), None
        result: dict[str, np.ndarray] = {"step": np.arange(1, ahead + 1)}
        time = self.data.get("time")
        if time and times is not None:
            if len(times) != len(rows):
                raise InputError(f"times has {len(times)} values for {len(rows)} rows")
            import pandas as pd

            result[time] = future_times(pd.Series(times), ahead, time).to_numpy()
        units = self.to_units(point[0], None if bounds is None else bounds[0], levels, index)
        return {**result, **units}


def _rows(series: Series, lo: int, n: int) -> Series:
    """The part of ``series`` (per window, one index, or ``None``) of windows ``lo..lo+n``."""
    return series[lo : lo + n] if isinstance(series, np.ndarray) else series


def future_times(times: Any, ahead: int, column: str) -> Any:
    """The ``ahead`` timestamps after the last one, at the column's regular spacing.

    Dates use ``pd.infer_freq`` (days, hours, month starts, ...); numbers need one
    constant step.

    Args:
        times: A ``pd.Series`` of at least 3 dates or numbers, in order.
        ahead: How many future times.
        column: The time column's name (in messages).

    Returns:
        ``pd.Series`` of ``ahead`` times.

    Raises:
        InputError: Too few times, or an irregular spacing.
    """
    import pandas as pd

    if len(times) < 3:
        raise InputError(
            f"time column {column!r} has {len(times)} rows; inferring its spacing needs >= 3"
        )
    if pd.api.types.is_datetime64_any_dtype(times):
        with warnings.catch_warnings():
            # pandas 3 announces an offset instead of a string; date_range takes either.
            warnings.simplefilter("ignore")
            freq = pd.infer_freq(pd.DatetimeIndex(times))
        if freq is None:
            raise InputError(
                f"time column {column!r} is irregularly spaced (steps "
                f"{sorted({str(s) for s in times.diff().iloc[1:]})[:4]}); future timestamps "
                "need a regular spacing"
            )
        return pd.Series(pd.date_range(times.iloc[-1], periods=ahead + 1, freq=freq)[1:])
    steps = np.diff(times.to_numpy(dtype=np.float64))
    if not np.allclose(steps, steps[0]):
        raise InputError(
            f"time column {column!r} is irregularly spaced (steps from {steps.min():g} to "
            f"{steps.max():g}); future timestamps need a regular spacing"
        )
    return pd.Series(times.iloc[-1] + steps[0] * np.arange(1, ahead + 1))

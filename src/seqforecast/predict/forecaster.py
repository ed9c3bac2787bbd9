"""``Forecaster``: a trained model on a device, numpy windows in, forecasts out.

``load_forecaster(path)`` needs no Hydra and no accelerator setting: the checkpoint is read
with ``torch.load(weights_only=True, map_location="cpu")`` (:mod:`.checkpoint`) and the
network is moved to the device asked for. Forecasts are direct up to the trained horizon and
iterative beyond it (:func:`seqforecast.forecast.iterative_forecast`), in streamed batches.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from seqforecast import intervals
from seqforecast.data.files import FileDataModule
from seqforecast.data.scaling import Scaler
from seqforecast.data.windows import FLOAT32
from seqforecast.errors import ConfigError, InputError
from seqforecast.fast import use_layers
from seqforecast.forecast import check_ahead, iterative_forecast
from seqforecast.memory import check_memory
from seqforecast.module import ForecastModule
from seqforecast.predict import tables
from seqforecast.predict.checkpoint import build_module, read_checkpoint, resolve_device
from seqforecast.predict.files import NpyRows
from seqforecast.predict.training_data import (
    FILE_NEEDS_INPUT,
    check_data_settings,
    rebuild_series,
)


class Forecaster:
    """A trained ``ForecastModule`` on a device, with numpy in and numpy out.

    ``predict(x)`` takes windows ``[n_series, n_steps]`` or ``[n_series, n_steps, F]``
    and returns ``[n_series, ahead]``: the model's direct forecast (for seq2seq
    models the last time step's ``k`` outputs) when ``ahead <= k``, else an
    iterative one that appends its predictions to the input and predicts again.
    Built by :func:`load_forecaster`; the arguments are what it read from the checkpoint.

    Args:
        module: The trained module; moved to ``device`` and put in eval mode.
        device: Where the network runs.
        data: The DataModule settings of training (``datamodule_hyper_parameters``), when
            the checkpoint has them.
        scaler: File data: the scaler fitted on the training rows.
        calibration: The interval widths calibrated by ``train.py``, if any.
        series: A panel scaled per series: its training series (id values), in order.
    """

    def __init__(
        self,
        module: ForecastModule,
        device: torch.device,
        data: dict[str, Any] | None = None,
        scaler: Scaler | None = None,
        calibration: intervals.Calibration | None = None,
        series: list[tuple[str, ...]] | None = None,
    ) -> None:
        self.module = module.to(device).eval()
        self.device = device
        self.data = data  # the DataModule settings of training, when the checkpoint has them
        self.scaler = scaler  # file data: the scaler fitted on the training rows
        self.calibration = calibration  # the intervals calibrated by train.py, if any
        self.series = series  # a panel's training series (id values), when scaled per series
        self.last_history: np.ndarray | None = None  # [S, T] targets of the last forecast_table

    @property
    def file_data(self) -> bool:
        """Whether the model was trained on a file (``data=csv``), not on generated series."""
        return self.scaler is not None and self.data is not None and "path" in self.data

    @property
    def hparams(self) -> dict[str, Any]:
        """The module's hyperparameters, as saved in the checkpoint (a copy)."""
        return dict(self.module.hparams)

    @property
    def n_steps(self) -> int:
        """The window length ``T`` the model reads."""
        return self.module.hparams.n_steps

    @property
    def horizon(self) -> int:
        """The trained horizon ``k``: steps of one direct forecast."""
        return self.module.hparams.horizon

    @property
    def target(self) -> str:
        """The trained target: ``next`` or ``seq2seq``."""
        return self.module.hparams.target

    @property
    def n_features(self) -> int:
        """Features per input step ``F`` (1 for a univariate model)."""
        return self.module.hparams.n_features

    @property
    def season(self) -> int:
        """The data's season stored at training (``season``); 1 for checkpoints without one."""
        # The data's: the module keeps it only for window_norm=seasonal (else saved as 1).
        stored = (self.data or {}).get("season") or self.module.hparams.get("season")
        return int(stored or 1)

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

    def check_input(self, x: np.ndarray | NpyRows) -> None:
        """Shape and dtype against the model; one clear line when they do not fit.

        Args:
            x: Windows ``[N, n_steps]`` (univariate models) or ``[N, n_steps, F]``.

        Raises:
            InputError: The shape or dtype does not fit the model.
        """
        expected = f"[n_series, {self.n_steps}, {self.n_features}]"
        if self.n_features == 1:
            expected = f"[n_series, {self.n_steps}] or {expected}"
        shape = tuple(x.shape)
        ok = (
            len(shape) in (2, 3)
            and shape[0] >= 1
            and shape[1] == self.n_steps
            and (shape[2] == self.n_features if len(shape) == 3 else self.n_features == 1)
        )
        if not ok:
            raise InputError(
                f"input windows have shape {shape}; this model expects {expected} "
                f"(n_steps={self.n_steps}, n_features={self.n_features})"
            )
        if not (np.issubdtype(x.dtype, np.floating) or np.issubdtype(x.dtype, np.integer)):
            raise InputError(f"input windows have dtype {x.dtype}; expected numbers")

    def check_options(self, ahead: int, window: str, batch_size: int) -> None:
        """``ahead``, ``window`` and ``batch_size`` are valid, and fit this model.

        Args:
            ahead: Steps to forecast (>= 1; past the horizon only for univariate models).
            window: ``sliding`` or ``growing``.
            batch_size: Windows per forward pass (>= 1).

        Raises:
            ConfigError: A value is not allowed, or does not fit this model.
        """
        check_ahead(ahead, window, self.horizon, self.n_features)
        if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
            raise ConfigError(f"batch_size must be a positive integer, got {batch_size!r}")
        if ahead > self.horizon and window == "growing" and self.hparams["net"] == "linear":
            raise ConfigError(
                f"window=growing feeds inputs longer than n_steps={self.n_steps}, but the linear "
                "model has a fixed window; use window=sliding"
            )

    def batches(
        self, x: np.ndarray | NpyRows, batch_size: int, progress: bool
    ) -> Iterator[tuple[int, torch.Tensor]]:
        """Yield ``(lo, x_batch [b, T, F] on the device)``, with a progress bar over series.

        Args:
            x: Windows ``[N, T]`` or ``[N, T, F]`` (checked by :meth:`check_input`).
            batch_size: Windows per batch.
            progress: Show a tqdm bar.

        Yields:
            The index of the batch's first window, and its float32 windows on the device.

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
                yield lo, torch.from_numpy(batch).to(self.device)
                bar.update(len(batch))

    def predict(
        self,
        x: np.ndarray | NpyRows,
        ahead: int | None = None,
        window: str = "sliding",
        batch_size: int = 1024,
        progress: bool = False,
    ) -> np.ndarray:
        """Forecast ``ahead`` steps (default: the trained horizon) after each window.

        ``x [N, T]`` or ``[N, T, F]`` (numpy, or rows streamed from a file) ->
        float32 ``[N, ahead]``. Batches of ``batch_size`` windows run one at a time
        under ``torch.inference_mode`` into a preallocated result, so memory holds
        one batch of activations whatever ``N`` is.

        Args:
            x: Windows ``[N, T]`` or ``[N, T, F]``, in the scale the model was trained on.
            ahead: Steps to forecast; ``None``: the trained horizon. More than the horizon
                forecasts iteratively (univariate models).
            window: Iterative input: ``sliding`` (the last ``n_steps`` values) or ``growing``
                (the whole extended input).
            batch_size: Windows per forward pass.
            progress: Show a progress bar over the windows.

        Returns:
            float32 ``[N, ahead]``.

        Raises:
            ConfigError: ``ahead``, ``window`` or ``batch_size`` is not allowed for this model,
                or the result would not fit in memory.
            InputError: ``x`` has the wrong shape or dtype, or holds NaN or inf.
        """
        ahead = self.horizon if ahead is None else ahead
        self.check_options(ahead, window, batch_size)
        if not hasattr(x, "shape"):
            x = np.asarray(x)
        self.check_input(x)
        # The result, and one batch's inputs grown by the iterative rounds (float32).
        grown = min(batch_size, len(x)) * (self.n_steps + ahead) * self.n_features
        check_memory(
            FLOAT32 * (len(x) * ahead + 2 * grown),
            f"forecasting ahead={ahead} steps for {len(x)} series",
            "ahead or batch_size",
        )
        out = np.empty((len(x), ahead), dtype=np.float32)
        forecast = self.module.forecast  # [B, T, F] -> [B, k]
        with torch.inference_mode():
            for lo, batch in self.batches(x, batch_size, progress):
                if ahead <= self.horizon:
                    y = forecast(batch)[:, :ahead]  # [b, ahead]
                else:
                    y = iterative_forecast(forecast, batch, ahead, window)  # [b, ahead]
                out[lo : lo + len(batch)] = y.cpu().numpy()
        return out

    def predict_steps(
        self, x: np.ndarray | NpyRows, batch_size: int = 1024, progress: bool = False
    ) -> np.ndarray:
        """Every output of the network: ``[N, T, k]`` (seq2seq) or ``[N, k]`` (next).

        Args:
            x: Windows ``[N, T]`` or ``[N, T, F]``.
            batch_size: Windows per forward pass.
            progress: Show a progress bar over the windows.

        Returns:
            float32 ``[N, T', k]`` (seq2seq; ``T' < T`` for nets that stride) or ``[N, k]``.

        Raises:
            ConfigError: ``batch_size`` is not a positive integer.
            InputError: ``x`` has the wrong shape or dtype, or holds NaN or inf.
        """
        self.check_options(self.horizon, "sliding", batch_size)
        self.check_input(x)
        out = None
        with torch.inference_mode():
            for lo, batch in self.batches(x, batch_size, progress):
                y = self.module(batch).cpu().numpy()  # [b, T, k] | [b, k]
                if out is None:
                    out = np.empty((len(x), *y.shape[1:]), dtype=np.float32)
                out[lo : lo + len(batch)] = y
        return out

    def forecast_table(
        self,
        path: str | Path | pd.DataFrame,
        ahead: int | None = None,
        window: str = "sliding",
        levels: Sequence[float] = (),
        method: str | None = None,
    ) -> pd.DataFrame:
        """Forecast ``ahead`` steps past the last row of each series of a table like the
        training file (``path``, or its rows as a DataFrame; :mod:`.tables`).

        Each series' last ``n_steps`` rows (and, for known-future inputs, its future rows)
        are scaled with the training scaling, forecast (iteratively past the horizon,
        univariate models only) and mapped back to the data's units. Returns a long frame:
        the id columns (panels), ``step`` (1..ahead), the future timestamps (when the model
        has a time column), the target column and, per level, ``lo-L``/``hi-L`` in the
        data's units (:func:`~.intervals.predict_intervals`).

        Args:
            path: A CSV/Parquet file with the training columns, or its rows as a DataFrame.
            ahead: Steps to forecast; ``None``: the trained horizon.
            window: Iterative input past the horizon: ``sliding`` or ``growing``.
            levels: Interval levels in percent, each in (0, 100); ``()``: none.
            method: Interval method (``conformal``, ``model``, ``cqr``); ``None``: the
                checkpoint's (:func:`~.intervals.calibration_for`).

        Returns:
            One row per series and step ahead.

        Raises:
            InputError: The checkpoint was not trained on a file, or the table does not
                fit it (columns, rows, values).
            ConfigError: ``ahead``, ``window``, ``levels`` or ``method`` is not allowed.
        """
        if not self.file_data:
            raise InputError("this checkpoint was not trained on a file (data=csv)")
        ahead = self.horizon if ahead is None else ahead
        self.check_options(ahead, window, 1)
        return tables.forecast_table(self, path, ahead, window, levels, method)

    def generated_data(
        self, split: str = "test", ahead: int | None = None, **overrides: Any
    ) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
        """The generated series the model was trained with, rebuilt from the checkpoint.

        ``overrides`` replace stored data settings (e.g. ``horizon=10, target="next"``).
        When ``ahead`` exceeds the data's horizon the series are regenerated with
        ``horizon=ahead, target="next"`` so that every forecast step has a target (the
        book's iterative check does the same: 1-step model, 10-step data). Returns
        ``x [N, T, 1]``, the split's targets ``y`` and the settings used
        (:func:`~seqforecast.predict.training_data.rebuild_series`).

        Args:
            split: ``train``, ``val`` or ``test``.
            ahead: Steps the targets cover; ``None``: the trained horizon.
            **overrides: Data settings that replace the stored ones.

        Returns:
            ``(x [N, T, 1], y, settings)``: windows, targets and the data settings used.

        Raises:
            InputError: The checkpoint was trained on a file, or holds no data settings.
            ConfigError: A setting (``split``, an override) is not allowed.
        """
        if self.file_data:
            raise InputError(FILE_NEEDS_INPUT.format(path=self.data["path"]))
        if self.data is None:
            raise InputError(
                "this checkpoint holds no data settings (datamodule_hyper_parameters), so its "
                "generated series cannot be rebuilt; pass input=<windows.npy|.csv>"
            )
        ahead = self.horizon if ahead is None else ahead
        return rebuild_series(self.data, split, self.n_steps, ahead, overrides)


def load_forecaster(path: str | Path, device: str = "auto", layers: str = "fast") -> Forecaster:
    """A :class:`Forecaster` from a ``train.py`` checkpoint, on ``device`` (auto|cpu|cuda).

    The checkpoint is read with ``weights_only=True`` onto the CPU; no device or
    accelerator setting is taken from it. ``layers`` (fast|plain) picks the layer
    implementation, as in training (:func:`seqforecast.fast.use_layers`).

    Args:
        path: A ``.ckpt`` file written by ``train.py``.
        device: ``auto`` (CUDA when present), ``cpu`` or ``cuda``.
        layers: ``fast`` (fused layers) or ``plain`` (the torch modules); same weights.

    Returns:
        The model in eval mode on ``device``, with the checkpoint's data settings, scaler
        and interval calibration.

    Raises:
        ConfigError: ``device`` or ``layers`` is not allowed (``cuda`` without a GPU).
        InputError: The file is missing, unsafe, damaged or not a seqforecast checkpoint.
    """
    dev = resolve_device(device)
    ckpt = read_checkpoint(path)
    module = build_module(ckpt, path)
    use_layers(module, layers)
    data = check_data_settings(ckpt.get("datamodule_hyper_parameters"), module, path)
    state = ckpt.get(FileDataModule.__qualname__)
    scaler = Scaler.from_dict(state["scaler"]) if isinstance(state, dict) and state else None
    series = [tuple(map(str, k)) for k in state.get("series", [])] if scaler else None
    stored, read = ckpt.get(intervals.CHECKPOINT_KEY), intervals.Calibration.from_dict
    calibration = None if stored is None else read(stored, str(path), module.hparams.horizon)
    return Forecaster(module, dev, data, scaler, calibration, series)

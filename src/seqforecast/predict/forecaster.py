"""``Forecaster``: a trained model on a device, numpy windows in, forecasts out.

``load_checkpoint(path)`` (under ``load_forecaster``) needs no Hydra and no accelerator setting:
the checkpoint is read
with ``torch.load(weights_only=True, map_location="cpu")`` (:mod:`.checkpoint`) and the
network is moved to the device asked for. Everything but the network's forward pass (checks,
batches, the direct and iterative forecasts, intervals, scaling, table rows) is the numpy
core's, :class:`seqforecast.core.ForecastCore`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from seqforecast import intervals
from seqforecast.core import ForecastCore
from seqforecast.data.files import FileDataModule
from seqforecast.data.scaling import Scaler
from seqforecast.errors import InputError
from seqforecast.fast import use_layers
from seqforecast.module import ForecastModule
from seqforecast.predict import tables
from seqforecast.predict.checkpoint import build_module, read_checkpoint, resolve_device
from seqforecast.predict.files import NpyRows
from seqforecast.predict.training_data import (
    FILE_NEEDS_INPUT,
    check_data_settings,
    rebuild_series,
)

log = logging.getLogger(__name__)


class Forecaster(ForecastCore):
    """A trained ``ForecastModule`` on a device: the core's forecasts (numpy in, numpy out)
    with the module's forward pass. Built by :func:`load_checkpoint`; the arguments are what
    it read from the checkpoint.

    Args:
        module: The trained module; moved to ``device`` and put in eval mode.
        device: Where the network runs.
        **facts: What else the checkpoint holds, as :class:`~seqforecast.core.ForecastCore`
            takes it: ``data`` (``datamodule_hyper_parameters``), ``scaler``,
            ``calibration``, ``series`` and ``features``.
    """

    def __init__(self, module: ForecastModule, device: torch.device, **facts: Any) -> None:
        super().__init__(dict(module.hparams), **facts)
        self.module = module.to(device).eval()
        self.device = device

    def forward(self, x: np.ndarray) -> np.ndarray:
        """The module's direct forecast: float32 ``[B, T, F] -> [B, k]``, run on the device."""
        with torch.inference_mode():
            return self.module.forecast(torch.from_numpy(x).to(self.device)).cpu().numpy()

    def forward_bounds(self, x: np.ndarray, levels: Sequence[float], method: str) -> np.ndarray:
        """The module's quantile bounds ``[B, k, L, 2]`` (float64) at ``levels``."""
        with torch.inference_mode():
            return intervals.model_bounds(self.module, torch.from_numpy(x).to(self.device), levels)

    def calibrate(self, levels: list[float], method: str) -> intervals.Calibration:
        """Widths of ``levels`` by ``method`` calibrated now, on the val split rebuilt from
        the checkpoint's data settings (generated data: the windows ``train.py`` used)."""
        if self.data is None or self.file_data:
            return super().calibrate(levels, method)
        x, y, settings = self.generated_data("val")
        log.info(f"calibrating intervals={method} at levels={levels} on the rebuilt val split")
        y = intervals.last_step(y, settings["target"])
        return intervals.calibrate(self.module, x, y, levels, method)

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
                y = self.module(torch.from_numpy(batch).to(self.device)).cpu().numpy()  # [b, T, k]
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
        data's units (:meth:`~seqforecast.core.ForecastCore.predict_intervals`).

        Args:
            path: A CSV/Parquet file with the training columns, or its rows as a DataFrame.
            ahead: Steps to forecast; ``None``: the trained horizon.
            window: Iterative input past the horizon: ``sliding`` or ``growing``.
            levels: Interval levels in percent, each in (0, 100); ``()``: none.
            method: Interval method (``conformal``, ``model``, ``cqr``); ``None``: the
                checkpoint's (:meth:`~seqforecast.core.ForecastCore.calibration_for`).

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


def load_checkpoint(path: str | Path, device: str = "auto", layers: str = "fast") -> Forecaster:
    """A :class:`Forecaster` from a ``train.py`` checkpoint, on ``device`` (auto|cpu|cuda)
    (:func:`~seqforecast.predict.loading.load_forecaster` takes ensemble folders too).

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
    features = list(state.get("columns", [])) or None if scaler else None
    stored, read = ckpt.get(intervals.CHECKPOINT_KEY), intervals.Calibration.from_dict
    calibration = None if stored is None else read(stored, str(path), module.hparams.horizon)
    return Forecaster(
        module,
        dev,
        data=data,
        scaler=scaler,
        calibration=calibration,
        series=series,
        features=features,
    )

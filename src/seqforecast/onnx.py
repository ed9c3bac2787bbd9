"""``OnnxForecaster``: an exported model (:mod:`seqforecast.export`) run with onnxruntime and
numpy only, as :class:`~seqforecast.predict.forecaster.Forecaster` runs the checkpoint (same
numbers up to float32 rounding): direct, iterative (the one loop of
:func:`seqforecast.forecast.iterative_forecast`, on numpy arrays), conformal intervals from
the sidecar's widths, the training scaler in and out for file models. Importing it imports
neither torch, Lightning nor pandas; onnxruntime is imported when a model is loaded.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from seqforecast.errors import ConfigError, InputError
from seqforecast.forecast import check_ahead, check_direct, iterative_forecast
from seqforecast.scores import level_name

MODEL, SIDECAR = "model.onnx", "model.json"
REQUIRED = ("format", "input", "output", "n_steps", "horizon", "target", "n_features", "net")


def future_times(times: np.ndarray, ahead: int) -> np.ndarray:
    """The ``ahead`` times after the last of ``times`` (numbers or ``datetime64``) at their
    one constant step; anything else (irregular steps, calendar months) is an error."""
    times = np.asarray(times)
    dates = np.issubdtype(times.dtype, np.datetime64)
    if times.ndim != 1 or len(times) < 3 or not (dates or np.issubdtype(times.dtype, np.number)):
        raise InputError(f"times must be >= 3 numbers or datetime64 values; got {times!r:.80}")
    steps = np.diff(times)
    same = (steps == steps[0]).all() if dates else np.allclose(steps, steps[0])
    if not (same and steps[0] > steps[0] * 0):
        raise InputError(
            f"times are not evenly spaced (steps from {steps.min()} to {steps.max()}); future "
            "timestamps need one constant step (use the torch Forecaster for calendar spacing)"
        )
    return times[-1] + steps[0] * np.arange(1, ahead + 1)


class OnnxForecaster:
    """``model.onnx`` + ``model.json`` from ``folder``: ``predict`` (windows, scaled for file
    models, ``[N, n_steps(, F)] -> [N, ahead]``), ``predict_intervals`` (bounds
    ``[N, ahead, L, 2]``), ``forecast_rows`` (past a file model's rows, in the data's units)."""

    def __init__(self, path: str | Path, threads: int | None = None) -> None:
        folder = Path(path)
        folder = folder.parent if folder.suffix == ".onnx" else folder
        self.info = read_sidecar(folder / SIDECAR)
        try:
            import onnxruntime as ort
        except ImportError:  # the onnx extra
            need = "OnnxForecaster needs onnxruntime: pip install 'seqforecast[onnx]'"
            raise ConfigError(need) from None
        options = ort.SessionOptions()
        if threads is not None:
            options.intra_op_num_threads = threads
        model = folder / self.info.get("file", MODEL)
        if not model.is_file():
            raise InputError(f"model file not found: {model} (written with {SIDECAR})")
        self.session = ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
        self.input_name = self.info["input"]["name"]
        self.n_steps, self.horizon = int(self.info["n_steps"]), int(self.info["horizon"])
        self.n_features, self.target = int(self.info["n_features"]), self.info["target"]
        self.fixed_window = bool(self.info.get("fixed_window", True))
        self.data: dict[str, Any] | None = self.info.get("data")
        scaler = (self.info.get("data_state") or {}).get("scaler") or {}
        self.center, self.scale = (scaler.get(k) for k in ("center", "scale"))  # [F] | [S, F]
        cal = self.info.get("intervals")
        self.levels: list[float] = [] if cal is None else [float(v) for v in cal["levels"]]
        self.widths = None if cal is None else np.asarray(cal["widths"], np.float64)  # [L, k]

    @property
    def file_data(self) -> bool:
        """Whether the model was trained on a file, with a scaler (``data=csv``)."""
        return self.center is not None and self.data is not None and "path" in self.data

    def forecast(self, x: np.ndarray) -> np.ndarray:
        """The model's direct forecast: float32 ``[B, T, F] -> [B, k]`` (one ONNX run)."""
        return self.session.run(None, {self.input_name: x})[0]

    def check_options(self, ahead: int, window: str) -> None:
        """``ahead`` and ``window`` are valid and fit this model (same rules as the
        torch Forecaster, plus: a fixed-window export cannot grow its window)."""
        check_ahead(ahead, window, self.horizon, self.n_features)
        if ahead > self.horizon and window == "growing" and self.fixed_window:
            raise ConfigError(
                f"window=growing feeds inputs longer than n_steps={self.n_steps}, but this "
                f"export of model.net={self.info['net']} takes exactly {self.n_steps} steps; "
                "use window=sliding"
            )

    def windows(self, x: np.ndarray) -> np.ndarray:
        """Windows ``[N, T]`` or ``[N, T, F]``, checked (shape, numbers, finite) -> float32
        ``[N, T, F]``."""
        x = np.asarray(x)
        expected = f"[n_series, {self.n_steps}, {self.n_features}]"
        if self.n_features == 1:
            expected = f"[n_series, {self.n_steps}] or {expected}"
        shape, f = x.shape, self.n_features
        if not (len(shape) in (2, 3) and shape[0] >= 1 and shape[1] == self.n_steps) or (
            shape[2:] != (f,) if len(shape) == 3 else f != 1
        ):
            raise InputError(
                f"input windows have shape {shape}; this model expects {expected} "
                f"(n_steps={self.n_steps}, n_features={self.n_features})"
            )
        if not (np.issubdtype(x.dtype, np.floating) or np.issubdtype(x.dtype, np.integer)):
            raise InputError(f"input windows have dtype {x.dtype}; expected numbers")
        x = np.ascontiguousarray(x, dtype=np.float32)
        x = x[..., np.newaxis] if x.ndim == 2 else x
        bad = ~np.isfinite(x).all(axis=(1, 2))
        if bad.any():
            raise InputError(
                f"input window {int(np.argmax(bad))} holds NaN or inf; expected finite numbers"
            )
        return x

    def predict(
        self,
        x: np.ndarray,
        ahead: int | None = None,
        window: str = "sliding",
        batch_size: int = 1024,
    ) -> np.ndarray:
        """Forecast ``ahead`` steps (default: the horizon) after each window:
        ``[N, T(, F)] -> float32 [N, ahead]``, direct or iterative, ``batch_size`` at a time."""
        ahead = self.horizon if ahead is None else ahead
        self.check_options(ahead, window)
        if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
            raise ConfigError(f"batch_size must be a positive integer, got {batch_size!r}")
        x = self.windows(x)
        out = np.empty((len(x), ahead), dtype=np.float32)
        for lo in range(0, len(x), batch_size):
            batch = x[lo : lo + batch_size]  # [b, T, F]
            if ahead <= self.horizon:
                out[lo : lo + len(batch)] = self.forecast(batch)[:, :ahead]
            else:
                out[lo : lo + len(batch)] = iterative_forecast(self.forecast, batch, ahead, window)
        return out

    def check_levels(self, levels: Sequence[float] | None, ahead: int) -> list[float]:
        """Sorted interval levels among those exported (``None``: all of them); direct only."""
        levels = self.levels if levels is None else sorted(float(v) for v in levels)
        if not levels:
            return []
        if self.widths is None:
            why = self.info.get("intervals_note") or "the checkpoint held no calibrated intervals"
            raise ConfigError(f"levels={levels}: this export has no interval widths ({why})")
        missing = [lv for lv in levels if lv not in self.levels]
        if missing:
            raise ConfigError(
                f"levels={levels}: the exported conformal widths are for levels={self.levels} "
                f"({missing} are not among them); pick from those"
            )
        check_direct(ahead, self.horizon, levels)
        return levels

    def predict_intervals(
        self, x: np.ndarray, ahead: int | None = None, levels: Sequence[float] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """The direct forecast float32 ``[N, ahead]`` and its conformal bounds float32
        ``[N, ahead, L, 2]`` (lo, hi): the point -/+ the exported width of each level and step."""
        ahead = self.horizon if ahead is None else ahead
        self.check_options(ahead, "sliding")
        levels = self.check_levels(levels, ahead)
        if not levels:
            raise ConfigError("predict_intervals needs levels; this export has none")
        point = self.predict(x, ahead)
        rows = [self.levels.index(lv) for lv in levels]
        w = self.widths[rows][:, :ahead].T  # [ahead, L]
        p = point.astype(np.float64)[..., np.newaxis]  # [N, ahead, 1]
        return point, np.stack([p - w, p + w], axis=-1).astype(np.float32)

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
        (the data's units, the sidecar's ``features`` order, ``R >= n_steps``): the last
        ``n_steps`` scaled, forecast, mapped back. Returns ``step``, the target column,
        ``lo-L``/``hi-L`` per level and, given ``times`` (one per row), the future times.
        ``series``: the id values of a panel scaled per series. Models with known-future
        inputs or calendar features are refused (scale and window those for :meth:`predict`).
        """
        if not self.file_data:
            raise InputError("this model was not trained on a file (data=csv): use predict")
        extra = [k for k in ("future_inputs", "calendar") if self.data.get(k)]
        if extra:
            raise ConfigError(
                f"this model uses data.{extra[0]}={self.data[extra[0]]}: forecast_rows does not "
                "build known-future features; pass scaled windows to predict()"
            )
        center, scale = self.scaling(series)
        ahead = self.horizon if ahead is None else ahead
        self.check_options(ahead, window)
        levels = self.check_levels(levels, ahead)
        rows = np.asarray(rows)
        if rows.ndim != 2 or rows.shape[1] != self.n_features or len(rows) < self.n_steps:
            raise InputError(
                f"rows have shape {rows.shape}; this model needs [>= {self.n_steps}, "
                f"{self.n_features}] (columns {self.info.get('features')})"
            )
        recent = np.asarray(rows[-self.n_steps :], dtype=np.float32)  # [T, F], as a table holds
        scaled = ((recent.astype(np.float64) - center) / scale).astype(np.float32)
        x = self.windows(scaled[np.newaxis])  # [1, T, F]
        if levels:
            point, bounds = self.predict_intervals(x, ahead, levels)
        else:
            point, bounds = self.predict(x, ahead, window), None
        result: dict[str, np.ndarray] = {"step": np.arange(1, ahead + 1)}
        time = self.data.get("time")
        if time and times is not None:
            if len(times) != len(rows):
                raise InputError(f"times has {len(times)} values for {len(rows)} rows")
            result[time] = future_times(times, ahead)

        def inverse(y: np.ndarray) -> np.ndarray:  # scaled target -> the data's units, float64
            return np.asarray(y, np.float64) * scale[0] + center[0]

        result[self.data["target_column"]] = inverse(point[0])
        for i, level in enumerate(levels):
            result[f"lo-{level_name(level)}"] = inverse(bounds[0, :, i, 0])
            result[f"hi-{level_name(level)}"] = inverse(bounds[0, :, i, 1])
        return result

    def scaling(self, series: Sequence[str] | str | None = None) -> tuple[np.ndarray, ...]:
        """``(center [F], scale [F])`` of the training scaling: global, or (a panel scaled
        per series) the row of the series with id values ``series``."""
        center, scale = np.asarray(self.center, np.float64), np.asarray(self.scale, np.float64)
        if center.ndim == 1:
            return center, scale
        known = [tuple(map(str, k)) for k in (self.info.get("data_state") or {}).get("series", [])]
        key = (series,) if isinstance(series, str) else tuple(map(str, series or ()))
        if key not in known:
            raise InputError(
                f"series {list(key)} is not among the {len(known)} series this model was "
                "trained on (it was scaled per series); pass series=<id values> of one of them"
            )
        i = known.index(key)
        return center[i], scale[i]


def read_sidecar(path: Path) -> dict[str, Any]:
    """``model.json``, checked to be an ONNX export's sidecar with the keys used here."""
    if not path.is_file():
        raise InputError(f"sidecar not found: {path} (export_model writes it beside the model)")
    try:
        info = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise InputError(f"{path} is not readable JSON ({str(err)[:100]})") from None
    missing = [k for k in REQUIRED if not isinstance(info, dict) or k not in info]
    if missing:
        raise InputError(f"{path} is not a seqforecast export sidecar: no keys {missing}")
    if info["format"] != "onnx":
        raise InputError(f"{path} describes a format={info['format']} export; expected onnx")
    return info

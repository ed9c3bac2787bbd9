"""``OnnxForecaster``: an exported model (:mod:`seqforecast.export`) run with onnxruntime and
numpy only, as :class:`~seqforecast.predict.forecaster.Forecaster` runs the checkpoint (same
numbers up to float32 rounding): direct, iterative (the one loop of
:func:`seqforecast.forecast.iterative_forecast`, on numpy arrays), conformal intervals from
the sidecar's widths, the training scaler in and out for file models. Importing it imports
neither torch, Lightning nor pandas; onnxruntime is imported when a model is loaded.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from seqforecast.data.transforms import TargetTransform
from seqforecast.errors import ConfigError, InputError
from seqforecast.forecast import check_ahead, check_direct, iterative_forecast
from seqforecast.names import TARGETS
from seqforecast.scores import level_name

MODEL, SIDECAR = "model.onnx", "model.json"
REQUIRED = ("format", "input", "output", "n_steps", "horizon", "target", "n_features", "net")
METADATA = "seqforecast"  # the model's own copy of the sidecar's shapes (seqforecast.export)
METADATA_KEYS = ("n_steps", "horizon", "n_features", "target", "fixed_window")


def future_times(times: np.ndarray, ahead: int) -> np.ndarray:
    """The ``ahead`` times after the last of ``times`` (numbers or ``datetime64``) at their
    one constant step; anything else (irregular steps, calendar months) is an error.

    Args:
        times: At least 3 evenly spaced numbers or ``datetime64`` values, in order.
        ahead: How many future times.

    Returns:
        ``[ahead]`` times, of the dtype of ``times``.

    Raises:
        InputError: ``times`` are too few, not numbers or dates, or not evenly spaced.
    """
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
    ``[N, ahead, L, 2]``), ``forecast_rows`` (past a file model's rows, in the data's units).

    Args:
        path: The export's folder (or its ``model.onnx``), as ``seqforecast.export`` wrote it.
        threads: onnxruntime's intra-op threads; ``None``: its default.

    Raises:
        ConfigError: ``threads`` is not a positive integer, or onnxruntime is not installed.
        InputError: The sidecar or model is missing, does not match the other, or cannot be
            loaded.
    """

    def __init__(self, path: str | Path, threads: int | None = None) -> None:
        folder = Path(path)
        folder = folder.parent if folder.suffix == ".onnx" else folder
        if threads is not None and (not _int(threads) or threads < 1):
            raise ConfigError(f"threads must be a positive integer or None, got {threads!r}")
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
        if model.resolve().parent != folder.resolve():
            raise InputError(f"{model} links to {model.resolve()}, outside the export's folder")
        data = model.read_bytes()  # hashed and loaded from the same bytes
        digest = self.info.get("sha256")
        if digest is not None and hashlib.sha256(data).hexdigest() != digest.lower():
            raise InputError(
                f"{model} is not the model {SIDECAR} was written with (its SHA-256 differs "
                "from the sidecar's sha256); export again"
            )
        try:
            self.session = ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
        except Exception as err:  # onnxruntime's own errors: not a model it can load
            reason = " ".join(str(err).split())[:160]
            raise InputError(
                f"{model} is not an ONNX model onnxruntime can load: {reason}"
            ) from None
        check_graph(self.session, self.info, model)
        self.input_name = self.info["input"]["name"]
        self.n_steps, self.horizon = int(self.info["n_steps"]), int(self.info["horizon"])
        self.n_features, self.target = int(self.info["n_features"]), self.info["target"]
        self.fixed_window = bool(self.info.get("fixed_window", True))
        self.data: dict[str, Any] | None = self.info.get("data")
        scaler = (self.info.get("data_state") or {}).get("scaler") or {}
        self.center, self.scale = (scaler.get(k) for k in ("center", "scale"))  # [F] | [S, F]
        # The target transform before the scaling (absent: none, as before data.transform).
        self.transform = TargetTransform.from_dict(scaler.get("transform", {"name": "none"}))
        cal = self.info.get("intervals")
        self.levels: list[float] = [] if cal is None else [float(v) for v in cal["levels"]]
        self.widths = None if cal is None else np.asarray(cal["widths"], np.float64)  # [L, k]

    @property
    def file_data(self) -> bool:
        """Whether the model was trained on a file, with a scaler (``data=csv``)."""
        return self.center is not None and self.data is not None and "path" in self.data

    def forecast(self, x: np.ndarray) -> np.ndarray:
        """The model's direct forecast: float32 ``[B, T, F] -> [B, k]`` (one ONNX run).

        Args:
            x: float32 windows ``[B, n_steps, F]`` (as :meth:`windows` returns them).

        Returns:
            float32 ``[B, horizon]``.

        Raises:
            InputError: The model answered another shape than its sidecar declares.
        """
        y = self.session.run(None, {self.input_name: x})[0]
        if y.shape != (len(x), self.horizon):  # a graph whose output axes are not declared
            raise InputError(
                f"the model answered shape {list(y.shape)} for {len(x)} windows; its sidecar "
                f"says [batch, {self.horizon}] (horizon={self.horizon})"
            )
        return y

    def check_options(self, ahead: int, window: str) -> None:
        """``ahead`` and ``window`` are valid and fit this model (same rules as the
        torch Forecaster, plus: a fixed-window export cannot grow its window).

        Args:
            ahead: Steps to forecast (>= 1; past the horizon only for univariate models).
            window: ``sliding`` or ``growing``.

        Raises:
            ConfigError: A value is not allowed, or does not fit this export.
        """
        check_ahead(ahead, window, self.horizon, self.n_features)
        if ahead > self.horizon and window == "growing" and self.fixed_window:
            raise ConfigError(
                f"window=growing feeds inputs longer than n_steps={self.n_steps}, but this "
                f"export of model.net={self.info['net']} takes exactly {self.n_steps} steps; "
                "use window=sliding"
            )

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
        ``[N, T(, F)] -> float32 [N, ahead]``, direct or iterative, ``batch_size`` at a time.

        Args:
            x: Windows ``[N, n_steps]`` or ``[N, n_steps, F]``, scaled as in training.
            ahead: Steps to forecast; ``None``: the horizon. More forecasts iteratively.
            window: Iterative input: ``sliding`` or ``growing`` (not for fixed-window exports).
            batch_size: Windows per ONNX run.

        Returns:
            float32 ``[N, ahead]``.

        Raises:
            ConfigError: ``ahead``, ``window`` or ``batch_size`` is not allowed for this model.
            InputError: ``x`` has the wrong shape or dtype, or holds NaN or inf.
        """
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
        """Sorted interval levels among those exported (``None``: all of them); direct only.

        Args:
            levels: Levels in percent; ``None``: every exported level.
            ahead: Steps to forecast; intervals need ``ahead <= horizon``.

        Returns:
            The levels, sorted; ``[]`` when there are none.

        Raises:
            ConfigError: The export has no widths, a level is not among them, or ``ahead``
                exceeds the horizon.
        """
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
        ``[N, ahead, L, 2]`` (lo, hi): the point -/+ the exported width of each level and step.

        Args:
            x: Windows ``[N, n_steps]`` or ``[N, n_steps, F]``, scaled as in training.
            ahead: Steps to forecast (at most the horizon); ``None``: the horizon.
            levels: Levels in percent among the exported ones; ``None``: all of them.

        Returns:
            ``(point [N, ahead], bounds [N, ahead, L, 2])``, float32.

        Raises:
            ConfigError: No levels, a level that was not exported, or ``ahead`` past the
                horizon.
            InputError: ``x`` has the wrong shape or dtype, or holds NaN or inf.
        """
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

        Args:
            rows: The series' rows ``[R, F]`` in the data's units, ``R >= n_steps``.
            ahead: Steps to forecast; ``None``: the horizon.
            window: Iterative input past the horizon: ``sliding`` or ``growing``.
            levels: Interval levels in percent among the exported ones; ``()``: none.
            times: One time per row (numbers or ``datetime64``, evenly spaced), or ``None``.
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
        recent = recent.astype(np.float64)
        if self.transform.positive:
            first = len(rows) - self.n_steps  # the rows' place among those given

            def row(i: int) -> str:
                return f"row {first + i + 1} of {len(rows)}"

            self.transform.check(recent[:, 0], "rows: the target column (feature 0)", row)
            recent[:, 0] = self.transform.forward(recent[:, 0])
        scaled = ((recent - center) / scale).astype(np.float32)
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
            return self.transform.inverse(np.asarray(y, np.float64) * scale[0] + center[0])

        result[self.data["target_column"]] = inverse(point[0])
        for i, level in enumerate(levels):
            result[f"lo-{level_name(level)}"] = inverse(bounds[0, :, i, 0])
            result[f"hi-{level_name(level)}"] = inverse(bounds[0, :, i, 1])
        return result

    def scaling(self, series: Sequence[str] | str | None = None) -> tuple[np.ndarray, ...]:
        """``(center [F], scale [F])`` of the training scaling: global, or (a panel scaled
        per series) the row of the series with id values ``series``.

        Args:
            series: The id values of one training series (a string for one id column);
                ignored when the scaling is global.

        Returns:
            ``(center [F], scale [F])``, float64.

        Raises:
            InputError: The model was scaled per series and ``series`` is not one of them.
        """
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
        raise InputError(f"{path} describes a format={info['format']!r} export; expected onnx")
    try:
        check_sidecar(info)
    except InputError as err:
        raise InputError(f"{path}: {err}") from None
    return info


def _int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _bad(key: str, value: Any, expected: str) -> InputError:
    return InputError(
        f"{key}={json.dumps(value, default=str)[:80]} is not allowed: expected {expected}"
    )


def _numbers(key: str, value: Any) -> np.ndarray:
    """Nested lists of numbers (no booleans) as float64, or one line naming ``key``."""

    def ok(v: Any) -> bool:
        return (
            all(ok(u) for u in v)
            if isinstance(v, list)
            else isinstance(v, int | float) and not isinstance(v, bool)
        )

    if not isinstance(value, list) or not ok(value):
        raise _bad(key, value, "a list of numbers")
    try:
        return np.asarray(value, dtype=np.float64)
    except ValueError:  # ragged
        raise _bad(key, value, "a rectangular list of numbers") from None


def check_sidecar(info: dict[str, Any]) -> None:
    """Every field the forecaster reads, its type and its range (one :class:`InputError`)."""
    for key in ("n_steps", "horizon", "n_features"):
        if not _int(info[key]) or info[key] < 1:
            raise _bad(key, info[key], "an integer >= 1")
    t, k, f = info["n_steps"], info["horizon"], info["n_features"]
    if info["target"] not in TARGETS:
        raise _bad("target", info["target"], f"one of {list(TARGETS)}")
    if not isinstance(info["net"], str):
        raise _bad("net", info["net"], "a model name")
    name = info.get("file", MODEL)
    plain = isinstance(name, str) and name not in ("", ".", "..") and not set(name) & set("/\\:")
    if not plain:
        raise _bad("file", name, "the model file's plain name inside the export folder")
    digest = info.get("sha256")
    if digest is not None and not (
        isinstance(digest, str)
        and len(digest) == 64
        and not set(digest.lower()) - set("0123456789abcdef")
    ):
        raise _bad("sha256", digest, "64 hex digits (the model file's SHA-256)")
    fixed = info.get("fixed_window", True)
    if not isinstance(fixed, bool):
        raise _bad("fixed_window", fixed, "true or false")
    time = t if fixed else "time"
    for key, rank, want in (("input", 3, ["batch", time, f]), ("output", 2, ["batch", k])):
        spec = info[key]
        ok = isinstance(spec, dict) and isinstance(spec.get("name"), str) and spec["name"]
        shape = spec.get("shape") if ok else None
        ok = (
            ok
            and isinstance(shape, list)
            and len(shape) == rank
            and spec.get("dtype", "float32") == "float32"
        )
        ok = ok and all(
            isinstance(d, str) if w in ("batch", "time") else d == w and _int(d)
            for d, w in zip(shape, want, strict=True)
        )
        if not ok:
            expected = f"{{name, shape: {want}, dtype: float32}} (n_steps={t}, horizon={k})"
            raise _bad(key, spec, expected)
    features = info.get("features")
    if features is not None and not (
        isinstance(features, list)
        and len(features) == f
        and all(isinstance(c, str) for c in features)
    ):
        raise _bad("features", features, f"null or {f} column names")
    check_intervals(info.get("intervals"), k)
    check_data(info, f)


def check_intervals(cal: Any, horizon: int) -> None:
    """``null`` or conformal widths ``[L, horizon]`` (>= 0, not NaN; +inf is an unbounded
    interval, too few calibration windows for its level) for distinct levels in (0, 100)."""
    if cal is None:
        return
    if not isinstance(cal, dict) or cal.get("method") != "conformal":
        raise _bad("intervals", cal, "null or {method: conformal, levels, widths}")
    levels = cal.get("levels")
    ok = (
        isinstance(levels, list)
        and levels
        and all(
            isinstance(v, int | float) and not isinstance(v, bool) and 0 < v < 100 for v in levels
        )
    )
    if not (ok and len(set(levels)) == len(levels)):
        raise _bad("intervals.levels", levels, "a list of distinct percentages in (0, 100)")
    widths = _numbers("intervals.widths", cal.get("widths"))
    if widths.shape != (len(levels), horizon):
        raise InputError(
            f"intervals.widths has shape {list(widths.shape)}; expected [{len(levels)}, "
            f"{horizon}] (one row per level, one width per step of the horizon)"
        )
    if not (widths >= 0).all():  # NaN and negative widths alike
        i, j = (int(v) for v in np.argwhere(~(widths >= 0))[0])
        raise InputError(f"intervals.widths[{i}][{j}] is {widths[i, j]:g}; expected a width >= 0")


def check_data(info: dict[str, Any], n_features: int) -> None:
    """The data's settings and its scaler: ``center``/``scale`` finite, ``[F]`` or (a panel
    scaled per series) ``[S, F]`` with ``S`` series ids, scales > 0."""
    data, state = info.get("data"), info.get("data_state")
    if data is not None and not isinstance(data, dict):
        raise _bad("data", data, "null or the data's settings")
    if state is not None and not isinstance(state, dict):
        raise _bad("data_state", state, "null or the data's state")
    scaler = (state or {}).get("scaler")
    if scaler is None:
        return
    if not isinstance(scaler, dict):
        raise _bad("data_state.scaler", scaler, "{center, scale}")
    center = _numbers("data_state.scaler.center", scaler.get("center"))
    scale = _numbers("data_state.scaler.scale", scaler.get("scale"))
    if not (
        center.ndim in (1, 2) and center.shape == scale.shape and center.shape[-1] == n_features
    ):
        raise InputError(
            f"data_state.scaler has center {list(center.shape)} and scale {list(scale.shape)}; "
            f"expected both [{n_features}] or [n_series, {n_features}]"
        )
    if not (np.isfinite(center).all() and np.isfinite(scale).all() and (scale > 0).all()):
        raise InputError("data_state.scaler holds a non-finite center or a scale <= 0")
    if "transform" in scaler:
        TargetTransform.from_dict(scaler["transform"], "data_state.scaler.transform")
    if center.ndim == 2:
        series = state.get("series")
        ok = isinstance(series, list) and len(series) == len(center)
        if not (ok and all(isinstance(s, list) for s in series)):
            raise _bad("data_state.series", series, f"{len(center)} lists of id values")
    if data is not None and "path" in data:
        if not isinstance(data.get("target_column"), str):
            raise _bad("data.target_column", data.get("target_column"), "a column name")
        if not isinstance(data.get("time"), str | None):
            raise _bad("data.time", data.get("time"), "null or a column name")


def check_graph(session: Any, info: dict[str, Any], model: Path) -> None:
    """The graph's declared input/output (and its own metadata, when the export wrote it)
    agree with the sidecar: one float input ``[batch, T, F]``, one output ``[batch, k]``."""
    t, k, f = info["n_steps"], info["horizon"], info["n_features"]
    fixed = info.get("fixed_window", True)
    inputs, outputs = session.get_inputs(), session.get_outputs()
    shapes = [list(a.shape) for a in (*inputs, *outputs)]
    ok = len(inputs) == len(outputs) == 1 and inputs[0].name == info["input"]["name"]
    ok = ok and inputs[0].type == outputs[0].type == "tensor(float)"
    ok = ok and len(shapes[0]) == 3 and len(shapes[1]) == 2
    if ok:  # batch axes free; time fixed at n_steps or (growing windows) free; F and k fixed
        (batch, time, feat), (out_batch, steps) = shapes
        ok = not _int(batch) and not _int(out_batch) and feat == f
        ok = ok and (time == t and fixed if _int(time) else True)
        ok = ok and (steps == k if _int(steps) else True)
    if not ok:
        declared = ", ".join(f"{a.name} {list(a.shape)}" for a in (*inputs, *outputs))
        sidecar = f"{info['input']['name']} [batch, {t if fixed else 'time'}, {f}] -> [batch, {k}]"
        raise InputError(f"{model} declares {declared}; its sidecar describes {sidecar}")
    meta = session.get_modelmeta().custom_metadata_map.get(METADATA)
    if meta is None:  # exports written before the metadata entry
        return
    try:
        facts = json.loads(meta)
    except ValueError:
        facts = None
    differ = [
        key
        for key in METADATA_KEYS
        if not isinstance(facts, dict)
        or facts.get(key) != info.get(key, True if key == "fixed_window" else None)
    ]
    if differ:
        got = {key: info.get(key) for key in differ}
        want = {key: facts.get(key) for key in differ} if isinstance(facts, dict) else "?"
        raise InputError(f"{model} was exported with {want}; its sidecar says {got}")

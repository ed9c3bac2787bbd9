"""``OnnxForecaster``: an exported model (:mod:`seqforecast.export`) run with onnxruntime and
numpy only. It supplies the forward pass (one ONNX run) and how an export loads (the model,
its sidecar ``model.json`` and their checks); the forecasts are the numpy core's,
:class:`seqforecast.core.ForecastCore`, as for the torch
:class:`~seqforecast.predict.forecaster.Forecaster` (same numbers up to float32 rounding):
direct, iterative, conformal intervals from the sidecar's widths, the training scaler in and
out for file models. Importing it imports neither torch, Lightning nor pandas; onnxruntime
is imported when a model is loaded.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from seqforecast.core import ForecastCore, Series, check_direct
from seqforecast.data.scaling import Scaler
from seqforecast.data.transforms import TargetTransform
from seqforecast.errors import ConfigError, InputError
from seqforecast.intervals import Calibration
from seqforecast.names import TARGETS

MODEL, SIDECAR = "model.onnx", "model.json"
REQUIRED = ("format", "input", "output", "n_steps", "horizon", "target", "n_features", "net")
METADATA = "seqforecast"  # the model's own copy of the sidecar's shapes (seqforecast.export)
METADATA_KEYS = ("n_steps", "horizon", "n_features", "target", "fixed_window")


class OnnxForecaster(ForecastCore):
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
        state = self.info.get("data_state") or {}
        # The kind only matters for fitting; the target transform is absent before transforms.
        scaler = state.get("scaler") and Scaler.from_dict({"kind": "none", **state["scaler"]})
        cal, calibration = self.info.get("intervals"), None
        if cal is not None:  # conformal widths [L, k]
            levels = [float(v) for v in cal["levels"]]
            widths = np.asarray(cal["widths"], np.float64)
            calibration = Calibration("conformal", levels, widths, int(cal.get("n_calibration", 0)))
        series = [tuple(map(str, k)) for k in state.get("series", [])]
        shapes = {k: self.info[k] for k in ("n_steps", "horizon", "target", "n_features", "net")}
        super().__init__(
            shapes, self.info.get("data"), scaler, calibration, series, self.info.get("features")
        )
        self.fixed_window = bool(self.info.get("fixed_window", True))
        if self.fixed_window:
            net = self.info["net"]
            self.fixed = f"this export of model.net={net} takes exactly {self.n_steps} steps"

    def forward(self, x: np.ndarray) -> np.ndarray:
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

    forecast = forward  # its name before the core: kept for callers of the public API

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
        i, center, scale = self.series_index(series), self.scaler.center, self.scaler.scale
        return (center, scale) if i is None else (center[i], scale[i])

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
        if self.calibration is None:
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
        self,
        x: np.ndarray,
        ahead: int | None = None,
        levels: Sequence[float] | None = None,
        series: Series = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """The direct forecast float32 ``[N, ahead]`` and its conformal bounds float32
        ``[N, ahead, L, 2]`` (lo, hi): the point -/+ the exported width of each level and step.

        Args:
            x: Windows ``[N, n_steps]`` or ``[N, n_steps, F]``, scaled as in training.
            ahead: Steps to forecast (at most the horizon); ``None``: the horizon.
            levels: Levels in percent among the exported ones; ``None``: all of them.
            series: The windows' rows of a per-series scaling (``ForecastCore.predict``).

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
        return super().predict_intervals(x, ahead, levels, series=series)


def load_onnx(path: str | Path, threads: int | None = None) -> ForecastCore:
    """An :class:`OnnxForecaster` of an export's folder, or of an exported ensemble (its
    manifest, ``ensemble.json``, beside members exported so) an
    :class:`~seqforecast.ensemble.EnsembleForecaster` of them.

    Args:
        path: The export's folder (or its ``model.onnx``), or an exported ensemble's folder.
        threads: onnxruntime's intra-op threads per member; ``None``: its default.

    Returns:
        The forecaster.

    Raises:
        ConfigError: ``threads`` is not allowed, or onnxruntime is not installed.
        InputError: A sidecar, model or the manifest is missing or malformed.
    """
    from seqforecast.ensemble import is_ensemble, load_ensemble

    if is_ensemble(path):
        return load_ensemble(path, lambda member: OnnxForecaster(member, threads))
    return OnnxForecaster(path, threads)


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

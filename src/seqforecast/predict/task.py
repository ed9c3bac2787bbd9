"""Load a checkpoint safely, forecast (direct and iterative) in streamed batches, write outputs.

``load_forecaster(path)`` needs no Hydra and no accelerator setting: the checkpoint is
read with ``torch.load(weights_only=True, map_location="cpu")`` and the network is moved
to the device asked for. ``predict(cfg)`` is the task function behind ``scripts/predict.py``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from omegaconf import DictConfig, OmegaConf
from tqdm.auto import tqdm

from seqforecast.data.files import FileDataModule
from seqforecast.data.scaling import Scaler
from seqforecast.data.sine import STAGES, SineDataModule
from seqforecast.data.table import future_times, load_table, read_frame
from seqforecast.data.windows import FLOAT32, check_memory
from seqforecast.errors import ConfigError, InputError, SeqforecastError
from seqforecast.fast import use_layers
from seqforecast.forecast import WINDOWS, iterative_forecast
from seqforecast.module import ForecastModule
from seqforecast.outputs import atomic_open, atomic_write_json, atomic_write_text
from seqforecast.plots import plot_forecasts
from seqforecast.predict.checkpoint import build_module, read_checkpoint

DEVICES = ("auto", "cpu", "cuda")
INPUT_SUFFIXES = (".npy", ".csv")
OUTPUT_NAMES = ("predictions", "metrics", "errors", "plot")


def resolve_device(device: str) -> torch.device:
    """``auto`` -> CUDA when present, else CPU; ``cuda`` on a host without a GPU is an error."""
    if device not in DEVICES:
        raise ConfigError(f"device must be one of {list(DEVICES)}, got {device!r}")
    if device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device=cuda but no CUDA GPU is visible on this host; use device=cpu")
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(device)


def check_data_settings(data: Any, module: ForecastModule, path: str | Path) -> dict | None:
    """The checkpoint's data settings (``datamodule_hyper_parameters``) fit its model.

    Generated series are rebuilt from them, so their window must be the model's (other
    sizes, ``n_series``, are bounded by the memory check when the data is set up).
    """
    if not isinstance(data, dict):
        return None
    for key in ("n_steps", "horizon"):
        if key in data and data[key] != module.hparams[key]:
            raise InputError(
                f"checkpoint {path}: its data settings say {key}={data[key]!r} but its "
                f"model's hyper_parameters say {key}={module.hparams[key]!r}; they must agree"
            )
    return dict(data)


class NpyRows:
    """Rows of a ``.npy`` file read batch by batch: only the rows asked for are in memory.

    ``rows[lo:hi]`` reads those rows from disk (C order) or from a memory map
    (Fortran order). ``shape``/``ndim``/``len`` come from the header alone.
    """

    def __init__(self, path: Path) -> None:
        try:
            mm = np.load(path, mmap_mode="r", allow_pickle=False)
        except (ValueError, OSError, EOFError) as err:
            reason = str(err).splitlines()[0][:120]
            raise InputError(
                f"input {path} is not a readable .npy array of numbers ({reason})"
            ) from None
        self.path, self.shape, self.dtype, self.ndim = path, mm.shape, mm.dtype, mm.ndim
        self.offset = mm.offset
        self._fortran = None if mm.ndim < 2 or mm.flags.c_contiguous else mm

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, rows: slice) -> np.ndarray:
        lo, hi, _ = rows.indices(len(self))
        if self._fortran is not None:
            return np.array(self._fortran[lo:hi])
        row = int(np.prod(self.shape[1:]))
        flat = np.fromfile(
            self.path,
            dtype=self.dtype,
            count=(hi - lo) * row,
            offset=self.offset + lo * row * self.dtype.itemsize,
        )
        return flat.reshape(hi - lo, *self.shape[1:])


def read_input(path: str | Path) -> np.ndarray | NpyRows:
    """Windows to forecast from ``.npy`` (streamed) or ``.csv`` (one series per row)."""
    path = Path(path)
    if path.suffix not in INPUT_SUFFIXES:
        raise InputError(f"input {path} must be one of {list(INPUT_SUFFIXES)} files")
    if not path.is_file():
        raise InputError(f"input not found: {path}")
    if path.suffix == ".npy":
        return NpyRows(path)
    if not path.read_text(errors="replace").strip():
        raise InputError(f"input {path} is empty; expected one series per row")
    try:
        x = np.loadtxt(path, delimiter=",", dtype=np.float32, ndmin=2)
    except ValueError as err:
        reason = str(err).splitlines()[0][:120]
        raise InputError(
            f"input {path} is not a CSV of numbers, one series per row, comma-separated ({reason})"
        ) from None
    return x


class Forecaster:
    """A trained ``ForecastModule`` on a device, with numpy in and numpy out.

    ``predict(x)`` takes windows ``[n_series, n_steps]`` or ``[n_series, n_steps, F]``
    and returns ``[n_series, ahead]``: the model's direct forecast (for seq2seq
    models the last time step's ``k`` outputs) when ``ahead <= k``, else an
    iterative one that appends its predictions to the input and predicts again.
    """

    def __init__(
        self,
        module: ForecastModule,
        device: torch.device,
        data: dict[str, Any] | None = None,
        scaler: Scaler | None = None,
    ) -> None:
        self.module = module.to(device).eval()
        self.device = device
        self.data = data  # the DataModule settings of training, when the checkpoint has them
        self.scaler = scaler  # file data: the scaler fitted on the training rows
        self.last_history: np.ndarray | None = None  # [T] target rows of the last forecast_table

    @property
    def file_data(self) -> bool:
        """Whether the model was trained on a file (``data=csv``), not on generated series."""
        return self.scaler is not None and self.data is not None and "path" in self.data

    @property
    def hparams(self) -> dict[str, Any]:
        return dict(self.module.hparams)

    @property
    def n_steps(self) -> int:
        return self.module.hparams.n_steps

    @property
    def horizon(self) -> int:
        return self.module.hparams.horizon

    @property
    def target(self) -> str:
        return self.module.hparams.target

    @property
    def n_features(self) -> int:
        return self.module.hparams.n_features

    def method(self, ahead: int, window: str = "sliding") -> str:
        """How ``ahead`` steps are forecast, in words (printed and written to metrics.json)."""
        if ahead <= self.horizon:
            last = ", last time step's outputs" if self.target == "seq2seq" else ""
            return f"direct ({self.horizon}-step model{last})"
        rounds = -(-ahead // self.horizon)
        span = f"last {self.n_steps} steps" if window == "sliding" else "whole extended input"
        return f"iterative, {window} window ({rounds} rounds of {self.horizon}, feeding the {span})"

    def check_input(self, x: np.ndarray | NpyRows) -> None:
        """Shape and dtype against the model; one clear line when they do not fit."""
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
        if not isinstance(ahead, int) or isinstance(ahead, bool) or ahead < 1:
            raise ConfigError(f"ahead must be an integer >= 1, got {ahead!r}")
        if window not in WINDOWS:
            raise ConfigError(f"window must be one of {list(WINDOWS)}, got {window!r}")
        if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
            raise ConfigError(f"batch_size must be a positive integer, got {batch_size!r}")
        if ahead > self.horizon and self.n_features != 1:
            raise ConfigError(
                f"ahead={ahead} exceeds the model's horizon {self.horizon}: iterative forecasts "
                f"feed predictions back, which needs a univariate model (n_features=1)"
            )
        if ahead > self.horizon and window == "growing" and self.hparams["net"] == "linear":
            raise ConfigError(
                f"window=growing feeds inputs longer than n_steps={self.n_steps}, but the linear "
                "model has a fixed window; use window=sliding"
            )

    def _batches(self, x: np.ndarray | NpyRows, batch_size: int, progress: bool):
        """Yield ``(lo, x_batch [b, T, F] on the device)``, with a progress bar over series."""
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
            for lo, batch in self._batches(x, batch_size, progress):
                if ahead <= self.horizon:
                    y = forecast(batch)[:, :ahead]  # [b, ahead]
                else:
                    y = iterative_forecast(forecast, batch, ahead, window)  # [b, ahead]
                out[lo : lo + len(batch)] = y.cpu().numpy()
        return out

    def predict_steps(
        self, x: np.ndarray | NpyRows, batch_size: int = 1024, progress: bool = False
    ) -> np.ndarray:
        """Every output of the network: ``[N, T, k]`` (seq2seq) or ``[N, k]`` (next)."""
        self.check_options(self.horizon, "sliding", batch_size)
        self.check_input(x)
        out = None
        with torch.inference_mode():
            for lo, batch in self._batches(x, batch_size, progress):
                y = self.module(batch).cpu().numpy()  # [b, T, k] | [b, k]
                if out is None:
                    out = np.empty((len(x), *y.shape[1:]), dtype=np.float32)
                out[lo : lo + len(batch)] = y
        return out

    def forecast_table(
        self, path: str | Path, ahead: int | None = None, window: str = "sliding"
    ) -> pd.DataFrame:
        """Forecast ``ahead`` steps past the last row of a file like the training file.

        The file must hold the training columns (target, inputs, time); its last
        ``n_steps`` rows are scaled with the training scaler, forecast (iteratively past the
        horizon, univariate models only) and mapped back to the data's units. Returns a
        frame with ``step`` (1..ahead), the future timestamps (when the model has a time
        column; inferred from its regular spacing) and the target column.
        """
        if not self.file_data:
            raise InputError("this checkpoint was not trained on a file (data=csv)")
        d = self.data
        ahead = self.horizon if ahead is None else ahead
        self.check_options(ahead, window, 1)
        columns = [d["target_column"], *d.get("inputs", [])]
        trained = [*([d["time"]] if d.get("time") else []), *columns]
        frame = read_frame(path)
        have = [str(c) for c in frame.columns]
        if not set(trained) <= set(have):
            raise InputError(
                f"input {path} has columns {have}, but this model was trained on columns "
                f"{trained} (missing {[c for c in trained if c not in have]})"
            )
        table = load_table(path, columns, d.get("time"), d.get("fill"), frame=frame)
        if len(table.values) < self.n_steps:
            raise InputError(
                f"input {path} has {len(table.values)} usable rows; the model needs the last "
                f"n_steps = {self.n_steps}"
            )
        x = self.scaler.transform(table.values[-self.n_steps :])[np.newaxis]  # [1, T, F]
        y = self.scaler.inverse(self.predict(x, ahead, window)[0])  # [ahead]
        result = {"step": np.arange(1, ahead + 1)}
        if d.get("time"):
            try:
                result[d["time"]] = future_times(table.times, ahead, d["time"]).to_numpy()
            except InputError as err:
                raise InputError(f"input {path}: {err}") from None
        result[d["target_column"]] = y
        self.last_history = table.values[-self.n_steps :, 0]  # [T], for the figure
        return pd.DataFrame(result)

    def generated_data(
        self, split: str = "test", ahead: int | None = None, **overrides: Any
    ) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
        """The generated series the model was trained with, rebuilt from the checkpoint.

        ``overrides`` replace stored data settings (e.g. ``horizon=10, target="next"``).
        When ``ahead`` exceeds the data's horizon the series are regenerated with
        ``horizon=ahead, target="next"`` so that every forecast step has a target (the
        book's iterative check does the same: 1-step model, 10-step data). Returns
        ``x [N, T, 1]``, the split's targets ``y`` and the settings used.
        """
        if self.file_data:
            raise InputError(
                f"this model was trained on the file {self.data['path']}; pass "
                "input=<file with the same columns> to forecast past its last row"
            )
        if self.data is None:
            raise InputError(
                "this checkpoint holds no data settings (datamodule_hyper_parameters), so its "
                "generated series cannot be rebuilt; pass input=<windows.npy|.csv>"
            )
        if split not in STAGES:
            raise ConfigError(f"split must be one of {list(STAGES)}, got {split!r}")
        settings = {**self.data, **overrides}
        if settings.get("n_steps", self.n_steps) != self.n_steps:
            raise ConfigError(
                f"data.n_steps={settings['n_steps']!r} must equal the model's n_steps="
                f"{self.n_steps}: its windows are the model's input"
            )
        ahead = self.horizon if ahead is None else ahead
        if ahead > settings.get("horizon", 0):
            settings.update(horizon=ahead, target="next")
        try:
            # The settings' sizes are checked (memory included) before any series is made.
            x, y = SineDataModule(**settings).arrays(split)
        except TypeError as err:
            raise InputError(
                f"the checkpoint's data settings are not SineDataModule's: {err}"
            ) from None
        except SeqforecastError as err:
            given = sorted(k for k in overrides if overrides[k] is not None)
            origin = f"overridden: {given}" if given else "as stored"
            raise type(err)(
                f"rebuilding the checkpoint's generated data ({origin}): {err}"
            ) from None
        return x, y, settings


def load_forecaster(path: str | Path, device: str = "auto", layers: str = "fast") -> Forecaster:
    """A :class:`Forecaster` from a ``train.py`` checkpoint, on ``device`` (auto|cpu|cuda).

    The checkpoint is read with ``weights_only=True`` onto the CPU; no device or
    accelerator setting is taken from it. ``layers`` (fast|plain) picks the layer
    implementation, as in training (:func:`seqforecast.fast.use_layers`).
    """
    dev = resolve_device(device)
    ckpt = read_checkpoint(path)
    module = build_module(ckpt, path)
    use_layers(module, layers)
    data = check_data_settings(ckpt.get("datamodule_hyper_parameters"), module, path)
    state = ckpt.get(FileDataModule.__qualname__)
    scaler = Scaler.from_dict(state["scaler"]) if isinstance(state, dict) and state else None
    return Forecaster(module, dev, data, scaler)


def forecast_targets(y: np.ndarray, target: str, ahead: int) -> np.ndarray:
    """The ``ahead`` values after each window: ``y [N, k]`` or ``[N, T, k]`` -> ``[N, ahead]``."""
    return (y[:, -1] if target == "seq2seq" else y)[:, :ahead]


def score(predictions: np.ndarray, targets: np.ndarray) -> tuple[dict[str, Any], np.ndarray]:
    """Overall and per-horizon MSE of ``[N, ahead]`` forecasts, and the squared errors."""
    errors = (predictions.astype(np.float64) - targets) ** 2  # [N, ahead]
    metrics = {
        "mse": float(errors.mean()),
        "mse_per_horizon": [float(v) for v in errors.mean(axis=0)],
    }
    return metrics, errors.astype(np.float32)


def _check_names(names: DictConfig) -> dict[str, str]:
    out = {}
    for key in OUTPUT_NAMES:
        value = names.get(key)
        if not isinstance(value, str) or not value or Path(value).name != value:
            raise ConfigError(
                f"names.{key} must be a file name inside the run folder, got {value!r}"
            )
        out[key] = value
    return out


def _check_count(cfg: DictConfig, key: str) -> int:
    value = cfg.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ConfigError(f"{key} must be an integer >= 0, got {value!r}")
    return value


def predict(cfg: DictConfig) -> dict[str, Any]:
    """Load ``cfg.ckpt_path``, forecast ``cfg.input`` (or the generated split), write outputs.

    Writes ``predictions.npy``/``.csv`` ``[N, ahead]``, ``config.yaml``, ``forecast.png``
    and, when targets are known (generated data), ``metrics.json`` and
    ``squared_errors.npy`` ``[N, ahead]`` (plus ``squared_errors_steps.npy``
    ``[N, T, k]`` for seq2seq models scored on their own data). Returns the summary.
    """
    if OmegaConf.is_missing(cfg, "ckpt_path") or not cfg.ckpt_path:
        raise ConfigError("ckpt_path is required: ckpt_path=outputs/<run>/checkpoints/best.ckpt")
    names = _check_names(cfg.names)
    n_plot = _check_count(cfg, "plot")
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "config.yaml", OmegaConf.to_yaml(cfg, resolve=True))

    forecaster = load_forecaster(cfg.ckpt_path, cfg.device, cfg.get("layers", "fast"))
    ahead = forecaster.horizon if cfg.ahead is None else cfg.ahead
    forecaster.check_options(ahead, cfg.window, cfg.batch_size)
    if forecaster.file_data:
        return predict_file(forecaster, cfg, ahead, out, names, n_plot)
    y, settings = None, None
    if cfg.input:
        x = read_input(cfg.input)
        source = str(cfg.input)
    else:
        overrides = {k: v for k, v in OmegaConf.to_container(cfg.data).items() if v is not None}
        x, y, settings = forecaster.generated_data(cfg.split, ahead, **overrides)
        source = f"generated {cfg.split} split"

    start = time.perf_counter()
    predictions = forecaster.predict(x, ahead, cfg.window, cfg.batch_size, progress=cfg.progress)
    summary: dict[str, Any] = {
        "ckpt_path": str(cfg.ckpt_path),
        "source": source,
        "n_series": len(predictions),
        "ahead": ahead,
        "method": forecaster.method(ahead, cfg.window),
        "window": cfg.window if ahead > forecaster.horizon else None,
        "device": str(forecaster.device),
        "predict_s": round(time.perf_counter() - start, 3),
    }
    with atomic_open(out / f"{names['predictions']}.npy") as f:
        np.save(f, predictions)
    with atomic_open(out / f"{names['predictions']}.csv") as f:
        np.savetxt(f, predictions, delimiter=",", fmt="%.9g")

    actual = None
    if y is not None:
        actual = forecast_targets(y, settings["target"], ahead)
        metrics, errors = score(predictions, actual)
        summary.update(metrics)
        with atomic_open(out / f"{names['errors']}.npy") as f:
            np.save(f, errors)
        steps_scored = (
            forecaster.target == "seq2seq"
            and settings["target"] == "seq2seq"
            and settings["horizon"] == forecaster.horizon
        )
        if steps_scored:
            step_errors = (forecaster.predict_steps(x, cfg.batch_size) - y) ** 2  # [N, T, k]
            summary["mse_all_steps"] = float(step_errors.mean(dtype=np.float64))
            with atomic_open(out / f"{names['errors']}_steps.npy") as f:
                np.save(f, step_errors)
        summary["data"] = settings
        atomic_write_json(out / names["metrics"], summary)

    if n_plot:
        history = np.asarray(x[:n_plot], dtype=np.float32)
        history = history[..., 0] if history.ndim == 3 else history  # [S, T]
        plot_forecasts(
            history,
            predictions[:n_plot],
            out / names["plot"],
            actual=None if actual is None else actual[:n_plot],
            n_series=n_plot,
            title=summary["method"],
        )
    return summary


def predict_file(
    forecaster: Forecaster,
    cfg: DictConfig,
    ahead: int,
    out: Path,
    names: dict[str, str],
    n_plot: int,
) -> dict[str, Any]:
    """A file-trained model: forecast ``ahead`` steps past the input file's last row.

    Writes ``predictions.csv`` (``step``, future timestamps when the model has a time
    column, the target in its own units), ``predictions.npy`` ``[1, ahead]`` and the figure.
    """
    if not cfg.input:
        raise InputError(
            f"this model was trained on the file {forecaster.data['path']}; pass "
            "input=<file with the same columns> to forecast past its last row"
        )
    start = time.perf_counter()
    table = forecaster.forecast_table(cfg.input, ahead, cfg.window)
    target = forecaster.data["target_column"]
    predictions = table[target].to_numpy(dtype=np.float32)[np.newaxis]  # [1, ahead]
    with atomic_open(out / f"{names['predictions']}.csv") as f:
        f.write(table.to_csv(index=False, float_format="%.9g").encode())
    with atomic_open(out / f"{names['predictions']}.npy") as f:
        np.save(f, predictions)
    if n_plot:
        plot_forecasts(
            forecaster.last_history[np.newaxis].astype(np.float32),
            predictions,
            out / names["plot"],
            n_series=1,
            title=forecaster.method(ahead, cfg.window),
        )
    return {
        "ckpt_path": str(cfg.ckpt_path),
        "source": str(cfg.input),
        "n_series": 1,
        "ahead": ahead,
        "method": forecaster.method(ahead, cfg.window),
        "window": cfg.window if ahead > forecaster.horizon else None,
        "device": str(forecaster.device),
        "predict_s": round(time.perf_counter() - start, 3),
    }


def format_summary(summary: dict[str, Any]) -> str:
    """A few lines for the terminal: what was forecast, how, and the scores when known."""
    lines = [
        f"forecast: {summary['n_series']} series x {summary['ahead']} steps from "
        f"{summary['source']} on {summary['device']} in {summary['predict_s']:.1f} s",
        f"method:   {summary['method']}",
    ]
    if "mse" in summary:
        per = " ".join(f"{v:.4f}" for v in summary["mse_per_horizon"])
        lines.append(f"mse:      {summary['mse']:.6f}  (per horizon step: {per})")
    if "mse_all_steps" in summary:
        lines.append(f"mse over every input step's outputs: {summary['mse_all_steps']:.6f}")
    return "\n".join(lines)

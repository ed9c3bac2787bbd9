"""``predict(cfg)``: the task behind ``scripts/predict.py``; scores and the terminal summary.

Loads the checkpoint (:func:`~seqforecast.predict.loading.load_forecaster`), forecasts the
input windows, the generated split the model was trained on, or (file-trained models) past
the end of a table, and writes the outputs into the run folder (:mod:`.files`).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig, OmegaConf

from seqforecast import intervals, scores
from seqforecast.core import check_max_ahead
from seqforecast.errors import ConfigError, InputError
from seqforecast.memory import limit
from seqforecast.outputs import atomic_write_json, atomic_write_text
from seqforecast.predict.files import (
    check_names,
    read_input,
    write_array,
    write_figure,
    write_intervals,
    write_predictions,
)
from seqforecast.predict.forecaster import Forecaster
from seqforecast.predict.loading import load_forecaster
from seqforecast.predict.training_data import FILE_NEEDS_INPUT
from seqforecast.rules import check


def forecast_targets(y: np.ndarray, target: str, ahead: int) -> np.ndarray:
    """The ``ahead`` values after each window: ``y [N, k]`` or ``[N, T, k]`` -> ``[N, ahead]``."""
    return intervals.last_step(y, target)[:, :ahead]


def score(predictions: np.ndarray, targets: np.ndarray) -> tuple[dict[str, Any], np.ndarray]:
    """Overall and per-horizon MSE of ``[N, ahead]`` forecasts, and the squared errors."""
    errors = (predictions.astype(np.float64) - targets) ** 2  # [N, ahead]
    metrics = {
        "mse": float(errors.mean()),
        "mse_per_horizon": [float(v) for v in errors.mean(axis=0)],
    }
    return metrics, errors.astype(np.float32)


def _check_count(cfg: DictConfig, key: str) -> int:
    value = cfg.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ConfigError(f"{key} must be an integer >= 0, got {value!r}")
    return value


def _summary(
    cfg: DictConfig, forecaster: Forecaster, source: str, n_series: int, ahead: int, start: float
) -> dict[str, Any]:
    """What was forecast, how, where, and how long it took since ``start``."""
    return {
        "ckpt_path": str(cfg.ckpt_path),
        "source": source,
        "n_series": n_series,
        "ahead": ahead,
        "method": forecaster.method(ahead, cfg.window),
        "window": cfg.window if ahead > forecaster.horizon else None,
        "device": str(forecaster.device),
        "predict_s": round(time.perf_counter() - start, 3),
    }


def predict(cfg: DictConfig) -> dict[str, Any]:
    """Load ``cfg.ckpt_path``, forecast ``cfg.input`` (or the generated split), write outputs.

    Writes ``predictions.npy``/``.csv`` ``[N, ahead]``, ``config.yaml``, ``forecast.png``
    and, when targets are known (generated data), ``metrics.json`` and
    ``squared_errors.npy`` ``[N, ahead]`` (plus ``squared_errors_steps.npy``
    ``[N, T, k]`` for seq2seq models scored on their own data). Returns the summary.
    Memory checks compare with ``cfg.max_memory`` (:mod:`seqforecast.memory`).
    """
    with limit(cfg.get("max_memory")):
        return _predict(cfg)


def _predict(cfg: DictConfig) -> dict[str, Any]:
    if OmegaConf.is_missing(cfg, "ckpt_path") or not cfg.ckpt_path:
        raise ConfigError("ckpt_path is required: ckpt_path=outputs/<run>/checkpoints/best.ckpt")
    n_plot = _check_count(cfg, "plot")
    max_ahead = check("max_ahead", cfg.max_ahead)
    if isinstance(cfg.ahead, int):  # before the checkpoint loads; ahead's own rule comes after
        check_max_ahead(cfg.ahead, max_ahead, "predict's")
    names = check_names(cfg.names)
    forecaster = load_forecaster(cfg.ckpt_path, cfg.device, cfg.get("layers", "fast"))
    ahead = forecaster.horizon if cfg.ahead is None else cfg.ahead
    check_max_ahead(ahead, max_ahead, "predict's")
    forecaster.check_options(ahead, cfg.window, cfg.batch_size)
    levels = cfg.get("levels")
    levels = OmegaConf.to_container(levels) if OmegaConf.is_config(levels) else levels
    calibration = forecaster.intervals_for(ahead, levels, cfg.get("intervals"))
    file_data = forecaster.file_data
    # Written once the settings are known to fit the checkpoint: a refused run leaves nothing.
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "config.yaml", OmegaConf.to_yaml(cfg, resolve=True))
    if file_data:
        return predict_file(forecaster, cfg, ahead, out, names, n_plot, calibration)
    y, settings = None, None
    if cfg.input:
        x = read_input(cfg.input)
        source = str(cfg.input)
    else:
        overrides = {k: v for k, v in OmegaConf.to_container(cfg.data).items() if v is not None}
        x, y, settings = forecaster.generated_data(cfg.split, ahead, **overrides)
        source = f"generated {cfg.split} split"

    start = time.perf_counter()
    bounds, levels = None, []
    if calibration is None:
        predictions = forecaster.predict(x, ahead, cfg.window, cfg.batch_size, cfg.progress)
    else:
        levels = calibration.levels
        predictions, bounds = forecaster.predict_intervals(
            x, ahead, batch_size=cfg.batch_size, progress=cfg.progress, calibration=calibration
        )
    summary = _summary(cfg, forecaster, source, len(predictions), ahead, start)
    write_predictions(out, names["predictions"], predictions)
    if bounds is not None:
        write_intervals(out, names["intervals"], predictions, bounds, levels)
        summary["intervals"] = calibration.to_dict()

    actual = None
    if y is not None:
        actual = forecast_targets(y, settings["target"], ahead)
        metrics, errors = score(predictions, actual)
        summary.update(metrics)
        if bounds is not None:
            summary.update(intervals.score(actual, bounds, levels))
        write_array(out / f"{names['errors']}.npy", errors)
        steps_scored = (
            forecaster.target == "seq2seq"
            and settings["target"] == "seq2seq"
            and settings["horizon"] == forecaster.horizon
        )
        if steps_scored:
            step_errors = (forecaster.predict_steps(x, cfg.batch_size) - y) ** 2  # [N, T, k]
            summary["mse_all_steps"] = float(step_errors.mean(dtype=np.float64))
            write_array(out / f"{names['errors']}_steps.npy", step_errors)
        summary["data"] = settings
        atomic_write_json(out / names["metrics"], summary)

    if n_plot:
        write_figure(
            out / names["plot"], x, predictions, actual, n_plot, summary["method"], bounds, levels
        )
    return summary


def predict_file(
    forecaster: Forecaster,
    cfg: DictConfig,
    ahead: int,
    out: Path,
    names: dict[str, str],
    n_plot: int,
    calibration: intervals.Calibration | None = None,
) -> dict[str, Any]:
    """A file-trained model: forecast ``ahead`` steps past each series' last row in the input.

    Writes ``predictions.csv`` (a long table: the id columns of a panel, ``step``, future
    timestamps when the model has a time column, the target in its own units, and with
    intervals ``lo-L``/``hi-L`` in those units), ``predictions.npy`` ``[S, ahead]``,
    ``intervals.npy`` ``[S, ahead, L, 2]`` and the figure.
    """
    if not cfg.input:
        raise InputError(FILE_NEEDS_INPUT.format(path=forecaster.data["path"]))
    start = time.perf_counter()
    levels = calibration.levels if calibration else []
    method = calibration.method if calibration else None
    table = forecaster.forecast_table(cfg.input, ahead, cfg.window, levels, method)
    target = forecaster.data["target_column"]
    n = len(table) // ahead  # series, each with ahead rows
    predictions = table[target].to_numpy(dtype=np.float32).reshape(n, ahead)  # [S, ahead]
    write_predictions(out, names["predictions"], predictions, table)
    summary = _summary(cfg, forecaster, str(cfg.input), n, ahead, start)
    bounds = None
    if calibration:
        sides = [f"{s}-{scores.level_name(lv)}" for lv in levels for s in ("lo", "hi")]
        bounds = table[sides].to_numpy(np.float32).reshape(n, ahead, len(levels), 2)
        write_array(out / f"{names['intervals']}.npy", bounds)
        summary["intervals"] = calibration.to_dict()
    if n_plot:
        write_figure(
            out / names["plot"],
            forecaster.last_history,  # [S, T]
            predictions,
            None,
            n_plot,
            summary["method"],
            bounds,
            levels,
        )
    return summary


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
    if "intervals" in summary:
        info = summary["intervals"]
        used = f"intervals: {info['method']} at levels {[f'{lv:g}' for lv in info['levels']]}"
        if info["n_calibration"]:
            used += f", calibrated on {info['n_calibration']} val windows"
        lines.append(used)
        for level in info["levels"]:
            name = scores.level_name(level)
            if f"coverage-{name}" in summary:
                lines.append(
                    f"  {name} %: coverage {summary[f'coverage-{name}']:.1f} %, mean width "
                    f"{summary[f'width-{name}']:.4f}, Winkler {summary[f'winkler-{name}']:.4f}"
                )
    return "\n".join(lines)

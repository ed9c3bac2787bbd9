"""``backtest(cfg)``: the task behind ``scripts/backtest.py``.

Loads a file-trained checkpoint, reads the input table with its training columns, applies
the checkpoint's ``data.split`` to the table's rows, and forecasts ``horizon`` steps from
``n_windows`` origins ``step_size`` rows apart over the test span with the checkpoint and
each baseline. Intervals are conformal, calibrated on every origin of the val span
forecast the same way (the checkpoint as trained; statistical baselines fitted on the
training rows). Writes ``backtest.csv``, ``metrics.csv``, ``metrics.json``,
``backtest.png`` and ``config.yaml`` into the run folder.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf

from seqforecast import scores
from seqforecast.backtest.baselines import baseline_forecasts
from seqforecast.backtest.neural import model_forecasts
from seqforecast.backtest.origins import (
    Spans,
    check_history,
    span_cutoffs,
    split_spans,
    target_rows,
)
from seqforecast.backtest.plot import plot_backtest
from seqforecast.backtest.refit import fit_rows, refit_forecasts, refit_split, run_config
from seqforecast.backtest.statistical import STATISTICAL, statistical_model
from seqforecast.backtest.table import (
    conformal_bounds,
    format_metrics,
    long_table,
    metrics_frame,
    model_metrics,
)
from seqforecast.data.table import Table
from seqforecast.errors import ConfigError, InputError
from seqforecast.outputs import atomic_write_json, atomic_write_text
from seqforecast.predict.forecaster import Forecaster, load_forecaster
from seqforecast.predict.training_data import read_table
from seqforecast.rules import NAME, check, check_value, int_at_least, or_null


@dataclass(frozen=True)
class Options:
    """The checked backtest settings of ``conf/backtest.yaml``."""

    n_windows: int | None
    step_size: int
    horizon: int | None
    refit: str | int
    levels: list[float]
    season: int | None  # None: the checkpoint's stored season (seqforecast.auto)
    baselines: list[str]
    batch_size: int
    name: str | None


def check_options(cfg: DictConfig) -> Options:
    """Every backtest key against its rule; the first bad one stops in one line."""
    if OmegaConf.is_missing(cfg, "ckpt_path") or not cfg.ckpt_path:
        raise ConfigError("ckpt_path is required: ckpt_path=outputs/<run>/checkpoints/best.ckpt")
    plain = OmegaConf.to_container(cfg, resolve=False)
    check_value("batch_size", plain.get("batch_size"), int_at_least(1))
    return Options(
        n_windows=check("n_windows", plain.get("n_windows")),
        step_size=check("step_size", plain.get("step_size")),
        horizon=check_value("horizon", plain.get("horizon"), or_null(int_at_least(1))),
        refit=check("refit", plain.get("refit")),
        levels=sorted(check("levels", plain.get("levels")) or []),
        season=check("season_length", plain.get("season_length")),
        baselines=check("baselines", plain.get("baselines")),
        batch_size=plain["batch_size"],
        name=check_value("name", plain.get("name"), or_null(NAME)),
    )


def origin_forecasts(
    forecaster: Forecaster,
    name: str,
    values: np.ndarray,
    cutoffs: np.ndarray,
    horizon: int,
    opts: Options,
    fit_rows: np.ndarray,
    seconds: dict[str, float] | None = None,
    checkpoint: bool = True,
) -> dict[str, np.ndarray]:
    """Forecasts ``[n, horizon]`` of the checkpoint (as ``name``; unless ``checkpoint`` is
    false) and of every baseline from cutoff rows ``[n]`` of ``values [R, F]``; ``fit_rows
    [n]`` as in :func:`~.baselines.baseline_forecasts`. Adds each model's seconds to
    ``seconds``."""
    seconds = {} if seconds is None else seconds
    out = {}
    for model in [name, *opts.baselines] if checkpoint else opts.baselines:
        start = time.perf_counter()
        if model == name:
            out[model] = model_forecasts(forecaster, values, cutoffs, horizon, opts.batch_size)
        else:
            y = values[:, 0]  # [R], the target
            out[model] = baseline_forecasts(model, y, cutoffs, horizon, opts.season, fit_rows)
        seconds[model] = seconds.get(model, 0.0) + time.perf_counter() - start
    return out


def _labels(table: Table, rows: np.ndarray) -> np.ndarray:
    """Timestamps of rows (any shape), or the row numbers without a time column."""
    return rows if table.times is None else table.times.to_numpy()[rows]


@dataclass
class Plan:
    """A checked backtest: the model, the table, its spans and the origins of each span."""

    forecaster: Forecaster
    name: str  # the checkpoint's label in the tables
    table: Table
    path: str  # the input table
    spans: Spans
    horizon: int
    test: np.ndarray  # [n] test cutoff rows
    cal: np.ndarray  # [m] val cutoff rows, for the intervals
    fit_rows: np.ndarray  # [n] rows each test origin's fitted parameters come from
    opts: Options  # the settings, season_length resolved (null: the checkpoint's season)


def plan(cfg: DictConfig, opts: Options) -> Plan:
    """Load the checkpoint and the input table, place the origins; every check that can fail
    runs here, before anything is forecast or retrained."""
    forecaster = load_forecaster(cfg.ckpt_path, cfg.device, cfg.get("layers", "fast"))
    if not forecaster.file_data:
        raise InputError(
            f"checkpoint {cfg.ckpt_path} was not trained on a file (data=csv); a backtest "
            "needs the file's rows and split"
        )
    data = forecaster.data
    extra = {k: data.get(k) for k in ("id", "future_inputs", "calendar") if data.get(k)}
    if extra:
        settings = " ".join(f"data.{k}={v}" for k, v in extra.items())
        raise InputError(
            f"checkpoint {cfg.ckpt_path} was trained with {settings}; backtests run on one "
            "series without known-future inputs (panels: see series_metrics.csv of the run)"
        )
    path = str(cfg.input or data["path"])
    table = read_table(path, data, forecaster.n_steps)
    spans = split_spans(table, data["split"], path)

    def row(i: int) -> str:
        when = "" if table.times is None else f", {data['time']} {table.times.iloc[i]}"
        return f"row {i + 1} of its {len(table.values)}{when}"

    where = f"input {path}: the target column {data['target_column']!r}"
    forecaster.scaler.target.check(table.values[:, 0], where, row)  # every row is scaled
    horizon = opts.horizon or forecaster.horizon
    forecaster.check_options(horizon, "sliding", opts.batch_size)
    if opts.season is None:  # the season stored at training (1 for older checkpoints)
        opts = replace(opts, season=forecaster.season)
    # A season as long as the training rows stops here (it is MASE's scale too).
    scores.seasonal_naive_mae(table.values[: spans.val, 0], opts.season)
    test = span_cutoffs(spans.test, spans.rows, horizon, opts.n_windows, opts.step_size)
    cal = span_cutoffs(spans.val, spans.test, horizon, what="val (calibration)")
    check_history(cal, forecaster.n_steps, "val")
    rows = fit_rows(test, opts.refit, spans.val)
    if opts.refit != "never":
        run_config(cfg.ckpt_path)
        refit_split(int(rows[0]), spans.test - spans.val, forecaster.n_steps + forecaster.horizon)
    name = opts.name or str(forecaster.hparams["net"])
    if name in opts.baselines:  # e.g. the naive network beside the naive baseline
        if opts.name:
            raise ConfigError(f"name={name!r} is also a baseline's; give the checkpoint another")
        name = f"{name}_ckpt"
    return Plan(forecaster, name, table, path, spans, horizon, test, cal, rows, opts)


def forecast_spans(
    cfg: DictConfig, opts: Options, p: Plan
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], dict[str, float]]:
    """Every model's test forecasts ``[n, h]``, its val forecasts ``[m, h]`` (calibration)
    and its seconds. Calibration uses the checkpoint as trained and statistical models
    fitted on the training rows; test origins follow ``refit``."""
    seconds: dict[str, float] = {}
    values, never = p.table.values, opts.refit == "never"
    train_rows = np.full(len(p.cal), p.spans.val)
    cal = origin_forecasts(
        p.forecaster, p.name, values, p.cal, p.horizon, opts, train_rows, seconds
    )
    test = {}
    if not never:
        start = time.perf_counter()
        test[p.name] = refit_forecasts(
            cfg, p.forecaster, p.table, p.test, p.fit_rows, p.horizon, p.spans.test - p.spans.val
        )
        seconds[p.name] += time.perf_counter() - start
    test |= origin_forecasts(
        p.forecaster, p.name, values, p.test, p.horizon, opts, p.fit_rows, seconds, never
    )
    return test, cal, seconds


def backtest(cfg: DictConfig) -> dict[str, Any]:
    """Run the backtest described by ``cfg`` (``conf/backtest.yaml``); returns the summary
    that ``metrics.json`` holds.

    Args:
        cfg: The composed ``conf/backtest.yaml``: ``ckpt_path``, ``input``, ``n_windows``,
            ``step_size``, ``horizon``, ``refit``, ``levels``, ``baselines``, ...; the files
            go to ``output_dir``.

    Returns:
        The settings used, the origins and, under ``models``, each model's metrics (overall
        and per step ahead).

    Raises:
        ConfigError: A setting is not allowed, more origins are asked than the test span
            holds, or a baseline's extra is not installed.
        InputError: The checkpoint is not one series trained on a file without known-future
            inputs, or the table does not fit it.
    """
    opts = check_options(cfg)
    for model in opts.baselines:
        if model in STATISTICAL:
            statistical_model(model, opts.season or 1)  # statsforecast missing: stop here
    p = plan(cfg, opts)  # the checkpoint and the table: a refusal here leaves nothing written
    opts = p.opts
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "config.yaml", OmegaConf.to_yaml(cfg, resolve=True))
    test, cal, seconds = forecast_spans(cfg, opts, p)

    y = p.table.values[:, 0].astype(np.float64)  # [R], the target
    history = y[: p.spans.val]  # the training rows: MASE's scale
    targets = target_rows(p.test, p.horizon)  # [n, h]
    actual, cal_actual = y[targets], y[target_rows(p.cal, p.horizon)]
    origins, times = _labels(p.table, p.test), _labels(p.table, targets)
    metrics, frames, bounds = {}, [], {}
    for model, forecast in test.items():
        bounds[model] = conformal_bounds(cal_actual, cal[model], forecast, opts.levels)
        frames.append(long_table(model, origins, times, actual, forecast, bounds[model]))
        metrics[model] = model_metrics(actual, forecast, bounds[model], history, opts.season)

    ends = pd.Series(origins[[0, -1]]).astype(str).tolist()  # dates print as dates
    summary = {
        "ckpt_path": str(cfg.ckpt_path),
        "input": p.path,
        "model": p.name,
        "method": p.forecaster.method(p.horizon),
        "horizon": p.horizon,
        "n_origins": len(p.test),
        "step_size": opts.step_size,
        "first_origin": ends[0],
        "last_origin": ends[1],
        "calibration_origins": len(p.cal),
        "rows": {
            "train": p.spans.val,
            "val": p.spans.test - p.spans.val,
            "test": p.spans.rows - p.spans.test,
        },
        "refit": opts.refit,
        "refits": 0 if opts.refit == "never" else len(np.unique(p.fit_rows)),
        "levels": opts.levels,
        "season_length": opts.season,
        "device": str(p.forecaster.device),
        "seconds": {k: round(v, 4) for k, v in seconds.items()},
        "models": metrics,
    }
    table = pd.concat(frames).to_csv(index=False, float_format="%.9g")
    atomic_write_text(out / "backtest.csv", table)
    atomic_write_text(out / "metrics.csv", metrics_frame(metrics).to_csv(index=False))
    atomic_write_json(out / "metrics.json", summary)
    if cfg.get("plot", True):
        mase = {m: v["overall"]["mase"] for m, v in metrics.items()}
        plot_backtest(out / "backtest.png", times, actual, test, bounds[p.name], mase)
    return summary


def format_summary(summary: dict[str, Any]) -> str:
    """What was backtested, how, and each model's overall metrics, for the terminal."""
    refit = summary["refit"]
    refit = "never refit" if refit == "never" else f"refit every {refit} origins"
    return "\n".join(
        [
            f"backtest: {summary['n_origins']} origins x {summary['horizon']} steps, "
            f"{summary['first_origin']} .. {summary['last_origin']}, step {summary['step_size']}, "
            f"{refit}; intervals calibrated on {summary['calibration_origins']} val origins",
            f"model:    {summary['model']}, {summary['method']}",
            format_metrics(summary["models"]),
        ]
    )

"""``backtest(cfg)``: the task behind ``scripts/backtest.py``.

Loads one or several file-trained checkpoints that share their data settings, reads the
input table once (one series, or every series of a panel trained with ``data.id``), applies
the checkpoints' ``data.split`` to each series' rows, and forecasts ``horizon`` steps from
``n_windows`` origins ``step_size`` rows apart over each test span with every checkpoint and
each baseline. Intervals are conformal, calibrated on every origin of the val span forecast
the same way (the checkpoints as trained; statistical baselines fitted once on the training
rows, then run forward over both spans). Writes ``backtest.csv`` (statsforecast's
``cross_validation`` format), ``metrics.csv`` and ``metrics.json`` (scored by
``utilsforecast.evaluation.evaluate``), ``backtest.png`` and ``config.yaml`` into the run
folder.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from omegaconf import DictConfig, ListConfig, OmegaConf

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
    cv_frame,
    evaluate_frame,
    evaluation,
    format_metrics,
    overall_scores,
)
from seqforecast.data.panel import Panel, load_panel, series_label
from seqforecast.data.table import Table
from seqforecast.errors import ConfigError, InputError, SeqforecastError
from seqforecast.outputs import atomic_write_json, atomic_write_text
from seqforecast.predict.forecaster import Forecaster
from seqforecast.predict.loading import load_forecaster
from seqforecast.rules import check, check_value, int_at_least, or_null

log = logging.getLogger(__name__)

# The data settings that pick the rows and spans: checkpoints backtested together share them
# (``path`` too, unless ``input`` names the table).
SHARED = ("target_column", "time", "fill", "split", "id")


@dataclass(frozen=True)
class Options:
    """The checked backtest settings of ``conf/backtest.yaml``."""

    ckpt_paths: list[str]
    names: list[str] | None  # None: each checkpoint's network (model.net)
    n_windows: int | None
    step_size: int
    horizon: int | None
    refit: str | int
    levels: list[float]
    season: int | None  # None: the checkpoints' stored season (seqforecast.auto)
    baselines: list[str]
    batch_size: int


def _strings(key: str, value: Any) -> list[str]:
    """A string, or a list of distinct non-empty strings, as a list; else one line."""
    items = list(value) if isinstance(value, list | ListConfig) else [value]
    if not (items and all(isinstance(v, str) and v for v in items)) or len(set(items)) < len(items):
        shown = OmegaConf.to_container(value) if isinstance(value, ListConfig) else value
        raise ConfigError(
            f"{key}={shown!r} is not allowed: expected a non-empty string or a list of "
            "distinct ones"
        )
    return items


def check_options(cfg: DictConfig) -> Options:
    """Every backtest key against its rule; the first bad one stops in one line."""
    if OmegaConf.is_missing(cfg, "ckpt_path") or not cfg.ckpt_path:
        raise ConfigError("ckpt_path is required: ckpt_path=outputs/<run>/checkpoints/best.ckpt")
    plain = OmegaConf.to_container(cfg, resolve=False)
    check_value("batch_size", plain.get("batch_size"), int_at_least(1))
    paths = _strings("ckpt_path", cfg.ckpt_path)
    baselines = check("baselines", plain.get("baselines"))
    names = None if cfg.get("name") is None else _strings("name", cfg.name)
    if names and len(names) != len(paths):
        raise ConfigError(
            f"name={names} gives {len(names)} names for {len(paths)} checkpoints (ckpt_path); "
            "expected one each"
        )
    for name in names or []:
        if name in baselines:  # e.g. the naive network beside the naive baseline
            raise ConfigError(f"name={name!r} is also a baseline's; give the checkpoint another")
    return Options(
        ckpt_paths=paths,
        names=names,
        n_windows=check("n_windows", plain.get("n_windows")),
        step_size=check("step_size", plain.get("step_size")),
        horizon=check_value("horizon", plain.get("horizon"), or_null(int_at_least(1))),
        refit=check("refit", plain.get("refit")),
        levels=sorted(check("levels", plain.get("levels")) or []),
        season=check("season_length", plain.get("season_length")),
        baselines=baselines,
        batch_size=plain["batch_size"],
    )


@dataclass
class Checkpoint:
    """One backtested checkpoint: its label in the tables and its columns of the table."""

    path: str
    name: str
    forecaster: Forecaster
    columns: list[int]  # its training columns' positions in the table read (target first)
    column_names: list[str]


def load_checkpoints(cfg: DictConfig, opts: Options) -> list[Checkpoint]:
    """Load each checkpoint; they must be file-trained and share :data:`SHARED`."""
    loaded = []
    for path in opts.ckpt_paths:
        forecaster = load_forecaster(path, cfg.device, cfg.get("layers", "fast"))
        if not forecaster.file_data:
            raise InputError(
                f"checkpoint {path} was not trained on a file (data=csv); a backtest needs the "
                "file's rows and split"
            )
        extra = {k: v for k in ("future_inputs", "calendar") if (v := forecaster.data.get(k))}
        if extra:
            settings = " ".join(f"data.{k}={v}" for k, v in extra.items())
            raise InputError(
                f"checkpoint {path} was trained with {settings}; backtests run without "
                "known-future inputs"
            )
        loaded.append((path, forecaster))
    (first_path, first), keys = loaded[0], [*SHARED, *(() if cfg.input else ("path",))]
    for path, forecaster in loaded[1:]:
        for key in keys:
            a, b = first.data.get(key) or None, forecaster.data.get(key) or None
            if a != b:
                raise InputError(
                    f"checkpoints {first_path} and {path} differ in data.{key} ({a!r} vs "
                    f"{b!r}); checkpoints backtested together must share their rows and split"
                )
    inputs = [c for _, f in loaded for c in f.data.get("inputs", [])]
    table_columns = [first.data["target_column"], *dict.fromkeys(inputs)]
    names = opts.names or _auto_names(loaded, opts.baselines)
    out = []
    for (path, f), name in zip(loaded, names, strict=True):
        columns = [f.data["target_column"], *f.data.get("inputs", [])]
        out.append(Checkpoint(path, name, f, [table_columns.index(c) for c in columns], columns))
    return out


def _auto_names(loaded: list[tuple[str, Forecaster]], baselines: list[str]) -> list[str]:
    """Each checkpoint's network (``rnn``; ``ensemble``); the run folder's name is added where
    networks repeat (an ensemble folder's: the folder holding it), and ``_ckpt`` where a
    baseline has the name."""
    nets = [str(f.hparams["net"]) for _, f in loaded]
    runs = [Path(p).resolve().parent for p, _ in loaded]
    runs = [
        run if Path(p).is_dir() else run.parent for run, (p, _) in zip(runs, loaded, strict=True)
    ]
    names = [
        f"{net}-{run.name}" if nets.count(net) > 1 else net
        for net, run in zip(nets, runs, strict=True)
    ]
    if len(set(names)) < len(names):
        names = [f"{name}-{i + 1}" for i, name in enumerate(names)]
    return [f"{name}_ckpt" if name in baselines else name for name in names]


@dataclass
class Series:
    """One series of the table, its spans and the origins of each span."""

    uid: str  # its unique_id in the tables
    values: np.ndarray  # [R, F] the table's columns, data units
    times: pd.Series | None
    spans: Spans
    test: np.ndarray  # [n] test cutoff rows
    cal: np.ndarray  # [m] val cutoff rows, for the intervals
    fit_rows: np.ndarray  # [n] rows each test origin's fitted parameters come from
    index: dict[str, int | None] = field(default_factory=dict)  # per checkpoint: its scaler's


def _labels(times: pd.Series | None, rows: np.ndarray) -> np.ndarray:
    """Timestamps of rows (any shape), or the row numbers without a time column."""
    return rows if times is None else times.to_numpy()[rows]


def plan_series(
    panel: Panel, s: int, path: str, cks: list[Checkpoint], horizon: int, opts: Options
) -> Series:
    """Series ``s`` of ``panel`` checked against every checkpoint, its origins placed."""
    data = cks[0].forecaster.data
    ids, key = data.get("id") or [], panel.keys[s]
    label = f"series {series_label(ids, key)} of {path}" if ids else path
    values, times = panel.rows(s), None if panel.times is None else panel.times[s]
    uid = "/".join(key) if ids else str(data["target_column"])
    spans = split_spans(data["split"], len(values), f"the {len(values)} rows of {label}", times)

    def row(i: int) -> str:
        when = "" if times is None else f", {data['time']} {times.iloc[i]}"
        return f"row {i + 1} of its {len(values)}{when}"

    series = Series(uid, values, times, spans, np.empty(0), np.empty(0), np.empty(0))
    for ck in cks:
        f = ck.forecaster
        if f.scaler.per_series:
            if key not in (f.series or []):
                raise InputError(
                    f"{label} is not a series checkpoint {ck.path} was trained on (it scales "
                    "each series by its own training rows)"
                )
            series.index[ck.name] = f.series.index(key)
        where = f"input {label}: the target column {data['target_column']!r}"
        f.scaler.target.check(values[:, 0], where, row)  # every row is scaled
    # A season as long as the training rows stops here (it is MASE's scale too).
    scores.seasonal_naive_mae(values[: spans.val, 0], opts.season)
    series.test = span_cutoffs(spans.test, spans.rows, horizon, opts.n_windows, opts.step_size)
    series.cal = span_cutoffs(spans.val, spans.test, horizon, what="val (calibration)")
    check_history(series.cal, max(ck.forecaster.n_steps for ck in cks), "val")
    series.fit_rows = fit_rows(series.test, opts.refit, spans.val)
    if opts.refit != "never":
        for ck in cks:
            run_config(ck.path)
            window = ck.forecaster.n_steps + ck.forecaster.horizon
            refit_split(int(series.fit_rows[0]), spans.test - spans.val, window)
    return series


def plan(
    cfg: DictConfig, opts: Options
) -> tuple[list[Checkpoint], list[Series], list[str], Options]:
    """Load the checkpoints and the input table, place every series' origins; every check
    that can fail runs here, before anything is forecast or retrained. Returns the
    checkpoints, the series, the panel series skipped (with why) and the settings with the
    horizon and season resolved."""
    cks = load_checkpoints(cfg, opts)
    first = cks[0]
    horizon = opts.horizon or first.forecaster.horizon
    season = opts.season or first.forecaster.season  # 1 for checkpoints older than it
    for ck in cks[1:]:
        f = ck.forecaster
        if opts.horizon is None and f.horizon != horizon:
            raise ConfigError(
                f"checkpoints {first.path} and {ck.path} forecast {horizon} and {f.horizon} "
                "steps; set horizon=N to backtest them at the same horizon"
            )
        if opts.season is None and f.season != season:
            raise ConfigError(
                f"checkpoints {first.path} and {ck.path} were trained with season {season} "
                f"and {f.season}; set season_length=N for the baselines and MASE"
            )
    for ck in cks:
        ck.forecaster.check_options(horizon, "sliding", opts.batch_size)
    opts = replace(opts, horizon=horizon, season=season)
    data = first.forecaster.data
    if opts.refit != "never" and data.get("id"):
        raise ConfigError(
            f"refit={opts.refit} retrains on one series' history; a panel (data.id={data['id']}) "
            "is backtested with refit=never"
        )
    path = str(cfg.input or data["path"])
    columns = [data["target_column"], *dict.fromkeys(c for ck in cks for c in ck.column_names[1:])]
    panel = load_panel(path, columns, data.get("time"), data.get("fill"), data.get("id") or [])
    series, skipped, errors = [], [], []
    for s in range(len(panel.keys)):
        try:
            series.append(plan_series(panel, s, path, cks, horizon, opts))
        except SeqforecastError as err:
            if not data.get("id"):  # one series: its error is the run's
                raise
            errors.append(err)
            skipped.append(f"{'/'.join(panel.keys[s])}: {err}")
    if not series:
        raise type(errors[0])(
            f"none of the {len(panel.keys)} series of {path} can be backtested; the first: "
            f"{errors[0]}"
        )
    if skipped:
        log.warning("%s: skipped %d of %d series: %s", path, len(skipped), len(panel.keys),
                    "; ".join(skipped[:3]) + (" ..." if len(skipped) > 3 else ""))  # fmt: skip
    return cks, series, skipped, opts


def forecast_series(
    cfg: DictConfig,
    opts: Options,
    cks: list[Checkpoint],
    s: Series,
    seconds: dict[str, float],
    fitted: dict[str, dict[str, str]],
) -> dict[str, np.ndarray]:
    """Every model's forecasts ``[m + n, h]`` from the val (calibration) origins, then the test
    origins of series ``s``. The val span uses the checkpoints as trained and the statistical
    models fitted on the training rows; the test origins follow ``refit``: with ``never``,
    each statistical model is fitted once for both spans."""
    cutoffs = np.concatenate([s.cal, s.test])  # [m + n]
    rows = np.concatenate([np.full(len(s.cal), s.spans.val), s.fit_rows])  # [m + n]
    out = {}
    for ck in cks:
        start = time.perf_counter()
        values = s.values[:, ck.columns]  # [R, F] its training columns
        f = model_forecasts(
            ck.forecaster, values, cutoffs, opts.horizon, opts.batch_size, s.index.get(ck.name)
        )
        if opts.refit != "never":
            folder = Path(cfg.output_dir) / "refits" / (ck.name if len(cks) > 1 else "")
            table = Table(values, ck.column_names, s.times)
            val_rows = s.spans.test - s.spans.val
            f[len(s.cal) :] = refit_forecasts(
                cfg,
                ck.path,
                folder,
                ck.forecaster,
                table,
                s.test,
                s.fit_rows,
                opts.horizon,
                val_rows,
            )
        out[ck.name] = f
        seconds[ck.name] = seconds.get(ck.name, 0.0) + time.perf_counter() - start
    y = s.values[:, 0]  # [R], the target
    for model in opts.baselines:
        start = time.perf_counter()
        out[model], fit = baseline_forecasts(model, y, cutoffs, opts.horizon, opts.season, rows)
        if fit:
            fitted.setdefault(model, {})[s.uid] = fit
        seconds[model] = seconds.get(model, 0.0) + time.perf_counter() - start
    return out


def backtest(cfg: DictConfig) -> dict[str, Any]:
    """Run the backtest described by ``cfg`` (``conf/backtest.yaml``); returns the summary
    that ``metrics.json`` holds.

    Args:
        cfg: The composed ``conf/backtest.yaml``: ``ckpt_path`` (one or a list), ``input``,
            ``n_windows``, ``step_size``, ``horizon``, ``refit``, ``levels``, ``baselines``,
            ...; the files go to ``output_dir``.

    Returns:
        The settings used, the origins, the statistical models fitted and, under
        ``models``, each model's overall scores (the mean over the series).

    Raises:
        ConfigError: A setting is not allowed, more origins are asked than the test span
            holds, or an extra (statsforecast, utilsforecast) is not installed.
        InputError: A checkpoint was not trained on a file or with known-future inputs, the
            checkpoints differ in their data settings, or the table does not fit them.
    """
    opts = check_options(cfg)
    evaluation()  # utilsforecast missing: stop here
    for model in opts.baselines:
        if model in STATISTICAL:
            statistical_model(model, 1)  # statsforecast missing: stop here
    cks, series, skipped, opts = plan(cfg, opts)  # a refusal here leaves nothing written
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "config.yaml", OmegaConf.to_yaml(cfg, resolve=True))

    seconds: dict[str, float] = {}
    fitted: dict[str, dict[str, str]] = {}
    frames, train, figure = [], [], None
    for s in series:
        forecasts = forecast_series(cfg, opts, cks, s, seconds, fitted)
        y = s.values[:, 0].astype(np.float64)  # [R], the target
        m, targets = len(s.cal), target_rows(s.test, opts.horizon)  # [n, h]
        actual, cal_actual = y[targets], y[target_rows(s.cal, opts.horizon)]
        scored = {
            model: (f[m:], conformal_bounds(cal_actual, f[:m], f[m:], opts.levels))
            for model, f in forecasts.items()
        }
        times = _labels(s.times, targets)
        frames.append(cv_frame(s.uid, _labels(s.times, s.test), times, actual, scored))
        training = _labels(s.times, np.arange(s.spans.val))
        train.append(pd.DataFrame({"unique_id": s.uid, "ds": training, "y": y[: s.spans.val]}))
        if figure is None:  # the first series
            figure = (times, actual, {k: v[0] for k, v in scored.items()}, scored[cks[0].name][1])

    df = pd.concat(frames, ignore_index=True)
    models = [ck.name for ck in cks] + opts.baselines
    metrics = evaluate_frame(df, pd.concat(train), models, opts.levels, opts.season)
    overall = overall_scores(metrics)
    first = pd.Series([df["cutoff"].min(), df["cutoff"].max()]).astype(str).tolist()
    summary = {
        "ckpt_path": {ck.name: ck.path for ck in cks},
        "input": str(cfg.input or cks[0].forecaster.data["path"]),
        "method": {ck.name: ck.forecaster.method(opts.horizon) for ck in cks},
        "horizon": opts.horizon,
        "series": len(series),
        "skipped": skipped,
        "n_origins": int(sum(len(s.test) for s in series)),
        "step_size": opts.step_size,
        "first_origin": first[0],
        "last_origin": first[1],
        "calibration_origins": int(sum(len(s.cal) for s in series)),
        "rows": {
            "train": int(sum(s.spans.val for s in series)),
            "val": int(sum(s.spans.test - s.spans.val for s in series)),
            "test": int(sum(s.spans.rows - s.spans.test for s in series)),
        },
        "refit": opts.refit,
        "refits": 0 if opts.refit == "never" else len(np.unique(series[0].fit_rows)),
        "levels": opts.levels,
        "season_length": opts.season,
        "device": str(cks[0].forecaster.device),
        "seconds": {k: round(v, 4) for k, v in seconds.items()},
        "fitted_models": fitted,
        "models": overall,
    }
    atomic_write_text(out / "backtest.csv", df.to_csv(index=False, float_format="%.9g"))
    atomic_write_text(out / "metrics.csv", metrics.to_csv(index=False, float_format="%.9g"))
    atomic_write_json(out / "metrics.json", summary)
    if cfg.get("plot", True):
        mase = {model: v["mase"] for model, v in overall.items()}
        plot_backtest(out / "backtest.png", *figure, mase)
    return summary


def format_summary(summary: dict[str, Any]) -> str:
    """What was backtested, how, each statistical model fitted, and each model's overall
    scores, for the terminal."""
    refit = summary["refit"]
    refit = "never refit" if refit == "never" else f"refit every {refit} origins"
    lines = [
        f"backtest: {summary['series']} series, {summary['n_origins']} origins x "
        f"{summary['horizon']} steps, {summary['first_origin']} .. {summary['last_origin']}, "
        f"step {summary['step_size']}, {refit}; intervals calibrated on "
        f"{summary['calibration_origins']} val origins",
        *(f"model:    {name}, {method}" for name, method in summary["method"].items()),
    ]
    for model, fits in summary["fitted_models"].items():
        counts = pd.Series(list(fits.values())).value_counts()
        shown = ", ".join(f"{k} ({v} series)" if len(fits) > 1 else k for k, v in counts.items())
        lines.append(f"fitted:   {model} {shown} (season_length={summary['season_length']})")
    if summary["skipped"]:
        lines.append(f"skipped:  {len(summary['skipped'])} series (metrics.json: skipped)")
    return "\n".join([*lines, format_metrics(summary["models"])])

"""Accuracy of the networks against statistical models on real series (docs/accuracy.md).

    python benchmarks/bench_accuracy.py                        # ../shared/data/real, all series
    python benchmarks/bench_accuracy.py --series souvenirs,ldeaths --configs linear,linear+last
    python benchmarks/bench_accuracy.py --markdown --out accuracy.json
    python benchmarks/bench_accuracy.py --quick                # a smoke run (see --quick)

The data folder (``--data``, default ``../shared/data/real`` from the repository root; not
part of the repository) holds ``series.json`` (per series: ``season``, ``horizon``, ``columns``
as ``[time, target, ...]``, or ``[id, time, target, ...]`` for a panel whose note starts with
``panel``) and one ``<name>.csv`` per series.

Protocol, per series (a panel: per series of the panel), with horizon ``h`` and season ``m``:

- 6 forecast origins at the end, one row apart: TEST is the last ``h + 5`` rows, VAL the
  ``h + 5`` rows before it, TRAIN the rows before that.
- MASE = mean ``|error|`` over the 6 origins x ``h`` steps / the in-sample seasonal-naive MAE
  (``mean |y_t - y_{t-m}|``) of the TRAIN rows; coverage = share of the 6 x ``h`` targets
  inside the model's 80 % interval.
- Statistical models (statsforecast ``SeasonalNaive``, ``AutoETS``, ``AutoARIMA``,
  ``AutoTheta``, ``season_length=m``) are refitted at each origin on all history up to it:
  statsforecast's own ``cross_validation(h, n_windows=6, step_size=1, refit=True,
  level=[80])``. ``AutoARIMA`` is skipped for seasons over 24 unless ``--arima-any-season``
  (its seasonal search at m = 52 is prohibitively slow); "relative to AutoETS" compares each
  model over the series both have.
- Networks: each entry of :data:`CONFIGS` is a list of Hydra overrides of ``conf/train.yaml``,
  trained by ``seqforecast.train.train`` on a temporary CSV of the series (a panel: one global
  model, ``data.id``) with ``data.split`` = ``[TRAIN, VAL, TEST]`` row counts (a panel: the
  dates starting VAL and TEST, shared by its series, which all end together), so the run's val
  windows are the 6 VAL origins and its test windows the 6 TEST origins. ``horizon=h``, up to
  ``--epochs`` epochs with early stopping on ``val/mse_last`` (``--patience``), ``seed``
  fixed. The forecasts at the TEST origins come from the best checkpoint
  (``load_forecaster``), reading history up to each origin only. The 80 % interval is the
  checkpoint's own conformal calibration on the 6 VAL windows. A name ending in ``/iter``
  trains a one-step model (``horizon=1``) and forecasts ``h`` steps iteratively; its interval
  is split-conformal from its own forecasts at the 6 VAL origins (per step ``j``: the
  ``ceil((n + 1) * 0.8)``-th smallest ``|error|``, ``n = 6``).
- ``auto`` (in ``--configs``): the automatic forecast of ``scripts/forecast.py`` with its
  default pool, run on TRAIN + VAL (its validation origins are the 6 VAL origins, its
  members refitted on TRAIN + VAL) and scored at the TEST origins (``test=h + 5``), with
  ``--auto-seeds`` seeds and ``--auto-epochs`` epochs per network candidate. Two rows come
  from the one run: ``auto`` (the mean of the best 3 by VAL MASE, its conformal interval)
  and ``auto/best1`` (the single candidate of lowest VAL MASE, per dataset; its own interval
  where it has one, statistical models only).
- ``n_steps`` (``--n-steps rule``): ``max(2 m, 2 h, 8)``, at most ``(TRAIN - k) // 2`` with
  ``k`` the model's horizon, so a short series still gives more training windows than
  ``n_steps``; ``--n-steps auto`` passes ``n_steps=auto`` instead, an integer fixes it.

Printed: per series the MASE of each model (a panel: one row, the mean over its series;
``--per-series`` adds its series' rows), then the mean and median over those rows, each
model's mean MASE relative to AutoETS's over the same rows, how many rows are worse than
seasonal naive by more than 10 %, the mean 80 % coverage and the seconds (fit + forecast,
summed); with ``auto``, its targets (:func:`target_lines`): its mean against the best
statistical model's over the single series and per panel, and its ratio to seasonal naive
per row. ``--out FILE.json|FILE.csv`` writes every number per series; ``--markdown`` prints
the table as markdown.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from hydra import compose, initialize_config_dir

from seqforecast import load_forecaster, scores
from seqforecast.backtest.neural import model_forecasts
from seqforecast.backtest.origins import span_cutoffs
from seqforecast.backtest.table import conformal_bounds
from seqforecast.errors import ConfigError, InputError, SeqforecastError
from seqforecast.train import train

ROOT = Path(__file__).resolve().parents[1]
CONF = str(ROOT / "conf")
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "real"
N_ORIGINS = 6
LEVEL = 80
# A network configuration: name -> overrides of conf/train.yaml. "/iter" at the end of a name:
# a one-step model (horizon=1) forecasting h steps iteratively. Settings that land later take
# one line each here (e.g. "linear+log": ["model=linear", "data.transform=log"]).
CONFIGS: dict[str, list[str]] = {
    "linear": ["model=linear"],
    "linear+last": ["model=linear", "model.window_norm=last"],
    "linear+revin": ["model=linear", "model.window_norm=revin"],
    "gru": ["model=gru"],
    "gru+last": ["model=gru", "model.window_norm=last"],
    "gru+revin": ["model=gru", "model.window_norm=revin"],
    "linear/iter": ["model=linear"],
    "linear+last/iter": ["model=linear", "model.window_norm=last"],
    "gru+last/iter": ["model=gru", "model.window_norm=last"],
    "linear+seasonal": ["model=linear", "model.window_norm=seasonal"],
    "gru+seasonal": ["model=gru", "model.window_norm=seasonal"],
    "linear+seasonal/iter": ["model=linear", "model.window_norm=seasonal"],
    "gru+seasonal/iter": ["model=gru", "model.window_norm=seasonal"],
    "linear+last+boxcox": ["model=linear", "model.window_norm=last", "data.transform=boxcox"],
    "linear+last+log/iter": ["model=linear", "model.window_norm=last", "data.transform=log"],
    "linear+seasonal+log/iter": [
        "model=linear",
        "model.window_norm=seasonal",
        "data.transform=log",
    ],
    "linear+seasonal+boxcox/iter": [
        "model=linear",
        "model.window_norm=seasonal",
        "data.transform=boxcox",
    ],
}
DEFAULT_CONFIGS = ["linear", "linear+last", "linear+revin", "gru", "gru+revin"]
AUTO = "auto"  # scripts/forecast.py's automatic forecast (run_auto); also gives "auto/best1"
STATS = ["SeasonalNaive", "AutoETS", "AutoARIMA", "AutoTheta"]
MAX_ARIMA_SEASON = 24
PANEL_IDS = {"aus_arrivals": "origin", "aus_accommodation": "state", "us_employment": "series"}


@dataclass(frozen=True)
class Series:
    """One entry of series.json: the file, its columns and the protocol's sizes."""

    name: str
    path: Path
    time: str
    target: str
    season: int
    horizon: int
    id: str | None = None  # a panel's id column


@dataclass
class Result:
    """Per model: MASE and 80 % coverage per series id, and the seconds spent on it."""

    mase: dict[str, dict[str, float]] = field(default_factory=dict)  # model -> id -> MASE
    coverage: dict[str, dict[str, float]] = field(default_factory=dict)
    val_mase: dict[str, dict[str, float]] = field(default_factory=dict)  # networks: VAL origins
    seconds: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


# ---------------------------------------------------------------- the protocol's arithmetic


def spans(rows: int, horizon: int) -> tuple[int, int, int]:
    """``(train, val, test)`` row counts: the last ``h + 5`` rows test, the ``h + 5`` before
    val (6 origins each at step 1), the rest train."""
    span = horizon + N_ORIGINS - 1
    train = rows - 2 * span
    if train < 2:
        raise InputError(
            f"a series of {rows} rows is too short for horizon={horizon}: val and test take "
            f"{span} rows each, leaving {train} training rows"
        )
    return train, span, span


def n_steps_rule(season: int, horizon: int, train_rows: int, model_horizon: int) -> int:
    """``max(2 m, 2 h, 8)``, at most ``(train_rows - model_horizon) // 2`` (at least 1)."""
    return max(1, min(max(2 * season, 2 * horizon, 8), (train_rows - model_horizon) // 2))


def mase(actual: np.ndarray, forecast: np.ndarray, train: np.ndarray, season: int) -> float:
    """Mean ``|actual - forecast|`` (any shape) over the seasonal-naive MAE of ``train``."""
    err = float(np.mean(np.abs(np.asarray(actual, np.float64) - forecast)))
    return err / scores.seasonal_naive_mae(train, season)


def coverage(actual: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> float:
    """Share of ``actual`` inside ``[lo, hi]``."""
    return scores.coverage(np.asarray(actual, np.float64), lo, hi)


# ---------------------------------------------------------------- data


def read_catalog(data: Path, names: list[str] | None) -> list[Series]:
    """The series of ``data/series.json`` (those in ``names``, in its order)."""
    if not data.is_dir():
        raise InputError(f"data folder {data} does not exist; give one with --data DIR")
    catalog = data / "series.json"
    if not catalog.is_file():
        raise InputError(f"{catalog} is missing; the data folder needs a series.json")
    entries = json.loads(catalog.read_text())
    unknown = sorted(set(names or []) - set(entries))
    if unknown:
        raise ConfigError(f"--series {unknown} are not in {catalog}; it has {sorted(entries)}")
    out = []
    for name, e in entries.items():
        if names and name not in names:
            continue
        cols = e["columns"]
        panel = str(e.get("note", "")).startswith("panel")
        if panel:
            ident, time_col, target = cols[0], cols[1], cols[2]
        else:
            ident, time_col, target = None, cols[0], cols[1]
        out.append(
            Series(name, data / f"{name}.csv", time_col, target, e["season"], e["horizon"], ident)
        )
    return out


def read_series(s: Series, max_series: int) -> dict[str, pd.DataFrame]:
    """id -> the series' rows ``[time, target]`` in time order (one id for a single series).

    A panel keeps the series ending at its last date (their splits share dates) and, with
    ``max_series > 0``, ``max_series`` of them picked evenly from the sorted ids."""
    if not s.path.is_file():
        raise InputError(f"{s.path} is missing (listed in series.json)")
    df = pd.read_csv(s.path)
    if s.id is None:
        return {s.name: df[[s.time, s.target]].reset_index(drop=True)}
    parts = {str(k): g[[s.time, s.target]].reset_index(drop=True) for k, g in df.groupby(s.id)}
    end = max(g[s.time].iloc[-1] for g in parts.values())
    ids = sorted(k for k, g in parts.items() if g[s.time].iloc[-1] == end)
    if max_series and len(ids) > max_series:
        ids = [ids[i] for i in np.linspace(0, len(ids) - 1, max_series).round().astype(int)]
    return {k: parts[k] for k in ids}


def write_example(folder: Path) -> Path:
    """Two small seasonal monthly series (trend x season + noise, seeded) and their
    series.json in ``folder``: what ``--quick`` runs on when the real data folder is absent."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    entries = {}
    for name, rows, growth in (("example_a", 60, 0.01), ("example_b", 72, 0.0)):
        t = np.arange(rows)
        y = (100 + 10 * np.sin(2 * np.pi * t / 12)) * (1 + growth) ** t + rng.normal(0, 2, rows)
        dates = pd.date_range("2000-01-01", periods=rows, freq="MS").strftime("%Y-%m-%d")
        pd.DataFrame({"date": dates, "value": y.round(3)}).to_csv(
            folder / f"{name}.csv", index=False
        )
        entries[name] = {
            "freq": "MS",
            "season": 12,
            "horizon": 6,
            "rows": rows,
            "columns": ["date", "value"],
            "note": "synthetic",
        }
    (folder / "series.json").write_text(json.dumps(entries, indent=1))
    return folder


# ---------------------------------------------------------------- statistical models


def stat_models(names: list[str], season: int) -> dict[str, object]:
    from statsforecast import models

    classes = {
        "SeasonalNaive": models.SeasonalNaive,
        "AutoETS": models.AutoETS,
        "AutoARIMA": models.AutoARIMA,
        "AutoTheta": models.AutoTheta,
    }
    return {n: classes[n](season_length=season) for n in names}


def run_stats(s: Series, parts: dict[str, pd.DataFrame], names: list[str], res: Result) -> None:
    """Each statistical model refitted at each of the 6 TEST origins (statsforecast's
    ``cross_validation``), scored per series."""
    from statsforecast import StatsForecast

    frames = []
    for key, g in parts.items():
        y = g[s.target].to_numpy(np.float64)
        frames.append(pd.DataFrame({"unique_id": key, "ds": np.arange(len(y)), "y": y}))
    df = pd.concat(frames, ignore_index=True)
    for name, model in stat_models(names, s.season).items():
        start = time.perf_counter()
        sf = StatsForecast(models=[model], freq=1, n_jobs=1)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            cv = sf.cross_validation(
                df=df, h=s.horizon, n_windows=N_ORIGINS, step_size=1, refit=True, level=[LEVEL]
            )
        for w in {str(w.message) for w in caught}:
            res.notes.append(f"{s.name} {name}: {w.splitlines()[0][:160]}")
        res.seconds[name] = res.seconds.get(name, 0.0) + time.perf_counter() - start
        for key, g in parts.items():
            y = g[s.target].to_numpy(np.float64)
            train_rows = spans(len(y), s.horizon)[0]
            c = cv[cv["unique_id"] == key].sort_values(["cutoff", "ds"])
            f = c[name].to_numpy().reshape(N_ORIGINS, s.horizon)
            actual = c["y"].to_numpy().reshape(N_ORIGINS, s.horizon)
            lo = c[f"{name}-lo-{LEVEL}"].to_numpy().reshape(N_ORIGINS, s.horizon)
            hi = c[f"{name}-hi-{LEVEL}"].to_numpy().reshape(N_ORIGINS, s.horizon)
            res.mase.setdefault(name, {})[key] = mase(actual, f, y[:train_rows], s.season)
            res.coverage.setdefault(name, {})[key] = coverage(actual, lo, hi)


# ---------------------------------------------------------------- networks


def train_overrides(
    s: Series, config: str, csv: Path, split: list, out: Path, args: argparse.Namespace, steps
) -> list[str]:
    iterative = config.endswith("/iter")
    k = 1 if iterative else s.horizon
    split_text = "[" + ",".join(str(v) for v in split) + "]"
    return [
        *CONFIGS[config],
        f"output_dir={out}",
        "data=csv",
        f"data.path={csv}",
        f"data.time={s.time}",
        f"data.target={s.target}",
        f"data.split={split_text}",
        *([f"data.id={s.id}"] if s.id else []),
        f"horizon={k}",
        f"n_steps={steps}",
        f"seed={args.seed}",
        f"levels=[{LEVEL}]",
        f"trainer.max_epochs={args.epochs}",
        "trainer.accelerator=cpu",
        "trainer.enable_progress_bar=false",
        "trainer.enable_model_summary=false",
        "callbacks=early_stopping",
        f"callbacks.early_stopping.patience={args.patience}",
        "~logger",
    ]


def run_network(
    s: Series,
    parts: dict[str, pd.DataFrame],
    config: str,
    work: Path,
    args: argparse.Namespace,
    res: Result,
) -> None:
    """Train ``config`` on the series (a panel: one global model), forecast the 6 TEST
    origins from its best checkpoint, score each series."""
    iterative = config.endswith("/iter")
    k = 1 if iterative else s.horizon
    folder = work / f"{s.name}-{config.replace('/', '_').replace('+', '_')}"
    folder.mkdir(parents=True, exist_ok=True)
    csv = folder / "series.csv"
    if s.id is None:
        (g,) = parts.values()
        g.to_csv(csv, index=False)
        split = list(spans(len(g), s.horizon))
        train_rows = split[0]
    else:  # dates shared by the panel's series, which all end together
        frames = [g.assign(**{s.id: key}) for key, g in parts.items()]
        pd.concat(frames)[[s.id, s.time, s.target]].to_csv(csv, index=False)
        longest = max(parts.values(), key=len)
        first, val, _ = spans(len(longest), s.horizon)
        times = longest[s.time]
        split = [str(times.iloc[first]), str(times.iloc[first + val])]
        train_rows = min(spans(len(g), s.horizon)[0] for g in parts.values())
    if args.n_steps == "rule":
        steps = n_steps_rule(s.season, s.horizon, train_rows, k)
    else:
        steps = args.n_steps
    overrides = train_overrides(s, config, csv, split, folder / "run", args, steps)
    start = time.perf_counter()
    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        cfg = compose("train", overrides=overrides)
    ckpt = train(cfg)["best_ckpt"]
    fc = load_forecaster(ckpt, device="cpu")
    for key, g in parts.items():
        y = g[s.target].to_numpy(np.float64)
        train_n, val_n, _ = spans(len(y), s.horizon)
        test_cut = span_cutoffs(train_n + val_n, len(y), s.horizon, N_ORIGINS)  # [6]
        val_cut = span_cutoffs(train_n, train_n + val_n, s.horizon, N_ORIGINS, what="val")
        values = y[:, np.newaxis]  # [R, 1]
        series = None if s.id is None else fc.series.index((key,))
        test_f, val_f = (
            model_forecasts(fc, values, c, s.horizon, series=series) for c in (test_cut, val_cut)
        )
        actual = y[test_cut[:, np.newaxis] + np.arange(1, s.horizon + 1)]  # [6, h]
        val_actual = y[val_cut[:, np.newaxis] + np.arange(1, s.horizon + 1)]
        res.val_mase.setdefault(config, {})[key] = mase(val_actual, val_f, y[:train_n], s.season)
        if iterative or fc.calibration is None:
            lo, hi = conformal_bounds(val_actual, val_f, test_f, [LEVEL])[LEVEL]
        else:
            # The widths are in the scaled (and transformed) space: bounds there, then back.
            z = fc.scaler.transform(test_f[..., np.newaxis], series=series)[..., 0]  # [6, h]
            bounds = fc.calibration.subset([LEVEL]).bounds(z)[:, :, 0]  # [6, h, 2]
            lo, hi = fc.scaler.inverse(bounds, series=series).transpose(2, 0, 1)
        res.mase.setdefault(config, {})[key] = mase(actual, test_f, y[:train_n], s.season)
        res.coverage.setdefault(config, {})[key] = coverage(actual, lo, hi)
    res.seconds[config] = res.seconds.get(config, 0.0) + time.perf_counter() - start
    res.notes.append(f"{s.name} {config}: n_steps={steps}, {fc.method(s.horizon)}")


def run_auto(
    s: Series, parts: dict[str, pd.DataFrame], work: Path, args: argparse.Namespace, res: Result
) -> None:
    """The automatic forecast chosen on TRAIN + VAL, scored at the 6 TEST origins: rows
    ``auto`` and ``auto/best1`` (its best single candidate by VAL MASE)."""
    from seqforecast.auto_forecast.task import forecast

    folder = work / f"{s.name}-auto"
    folder.mkdir(parents=True, exist_ok=True)
    csv = folder / f"{s.name}.csv"  # its stem names a single series, as read_series does
    frames = [g.assign(**{s.id: key}) if s.id else g for key, g in parts.items()]
    pd.concat(frames).to_csv(csv, index=False)
    span = s.horizon + N_ORIGINS - 1
    overrides = [
        f"input={csv}",
        f"data.time={s.time}",
        f"data.target={s.target}",
        f"data.id={s.id}" if s.id else "data.id=null",
        f"season={s.season}",
        f"horizon={s.horizon}",
        f"n_val={N_ORIGINS}",
        f"test={span}",
        f"seeds={args.auto_seeds}",
        f"epochs={args.auto_epochs}",
        f"output_dir={folder / 'out'}",
        "plot=false",
    ]
    start = time.perf_counter()
    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        cfg = compose("forecast", overrides=overrides)
    summary = forecast(cfg)
    res.seconds[AUTO] = res.seconds.get(AUTO, 0.0) + time.perf_counter() - start
    ranked = {k: v for k, v in summary["val_mase"].items() if k != AUTO and v is not None}
    best = min(ranked, key=ranked.get)
    test = pd.read_csv(folder / "out" / "test.csv")
    val = pd.read_csv(folder / "out" / "validation.csv")
    val = val[val["metric"] == "mase"].set_index("unique_id")
    for key, g in parts.items():
        y = g[s.target].to_numpy(np.float64)
        t = test[test["unique_id"].astype(str) == key]
        actual = t["y"].to_numpy().reshape(N_ORIGINS, s.horizon)
        train_rows = y[: spans(len(y), s.horizon)[0]]
        for row, model in ((AUTO, AUTO), (f"{AUTO}/best1", best)):
            f = t[model].to_numpy().reshape(N_ORIGINS, s.horizon)
            res.mase.setdefault(row, {})[key] = mase(actual, f, train_rows, s.season)
            res.val_mase.setdefault(row, {})[key] = float(val.loc[key, model])
            lo, hi = f"{model}-lo-{LEVEL}", f"{model}-hi-{LEVEL}"
            res.coverage.setdefault(row, {})[key] = (
                coverage(actual.reshape(-1), t[lo].to_numpy(), t[hi].to_numpy())
                if lo in t
                else math.nan
            )
    res.notes.append(f"{s.name} auto: {summary['members']}, best single {best}")


# ---------------------------------------------------------------- the table


def table_rows(
    results: dict[str, Result], catalog: list[Series], models: list[str], per_series: bool
) -> pd.DataFrame:
    """MASE rows: one per single series, one per panel (the mean over its series), plus the
    panel's series with ``per_series``."""
    rows = {}
    for s in catalog:
        r = results[s.name]
        cell = {m: float(np.mean(list(r.mase[m].values()))) for m in models if m in r.mase}
        label = s.name if s.id is None else f"{s.name} (mean of {len(next(iter(r.mase.values())))})"
        rows[label] = cell
        if per_series and s.id is not None:
            for key in next(iter(r.mase.values())):
                rows[f"  {s.name}/{key}"] = {m: r.mase[m][key] for m in models if m in r.mase}
    return pd.DataFrame.from_dict(rows, orient="index").reindex(columns=models)


def summary_rows(
    main: pd.DataFrame, results: dict[str, Result], catalog: list[Series], models: list[str]
) -> pd.DataFrame:
    """Mean, median, mean relative to AutoETS, worse than seasonal naive by > 10 %, mean
    80 % coverage and seconds, over the rows of ``main`` (panels: one row each)."""
    out = {"mean": main.mean(), "median": main.median()}
    if "AutoETS" in main:
        out["mean / AutoETS's"] = pd.Series(
            {m: main[m][main[m].notna() & main["AutoETS"].notna()].mean() for m in models}
        ) / pd.Series(
            {m: main["AutoETS"][main[m].notna() & main["AutoETS"].notna()].mean() for m in models}
        )
    if "SeasonalNaive" in main:
        worse = main.gt(1.1 * main["SeasonalNaive"], axis=0)
        out["worse than SNaive >10 %"] = worse.sum().astype(float)
    out[f"{LEVEL} % coverage"] = _row_means(results, catalog, models, "coverage")
    # Networks: the mean over the same rows of the MASE at the 6 VAL origins (the span early
    # stopping watched, so optimistic, alike for every configuration): what picks one.
    out["mean val MASE"] = _row_means(results, catalog, models, "val_mase")
    out["seconds"] = pd.Series(
        {m: sum(r.seconds.get(m, 0.0) for r in results.values()) for m in models}
    )
    return pd.DataFrame(out).T.reindex(columns=models)


def _row_means(
    results: dict[str, Result], catalog: list[Series], models: list[str], what: str
) -> pd.Series:
    """Per model: the mean over the rows (a panel: its series' mean first) of ``Result.<what>``."""
    means = {}
    for m in models:
        per = [
            np.mean(list(getattr(results[s.name], what)[m].values()))
            for s in catalog
            if m in getattr(results[s.name], what)
        ]
        means[m] = float(np.mean(per)) if per else math.nan
    return pd.Series(means)


def target_lines(main: pd.DataFrame, catalog: list[Series], models: list[str]) -> list[str]:
    """``auto`` against the issue's targets: its mean MASE over the single series against the
    best statistical model's (AutoETS, AutoARIMA, AutoTheta: the lowest mean, in hindsight),
    each panel's mean likewise, and each row's ratio to seasonal naive (> 1.05 named)."""
    if AUTO not in main or "SeasonalNaive" not in main:
        return []
    stats = [m for m in ("AutoETS", "AutoARIMA", "AutoTheta") if m in main]
    singles = [s.name for s in catalog if s.id is None]
    lines = []
    if stats and singles:
        single = main.loc[singles]
        best = single[stats].mean().idxmin()
        auto, ref = single[AUTO].mean(), single[best].mean()
        lines.append(
            f"single series ({len(singles)}): {AUTO} {auto:.3f}, best statistical model "
            f"{best} {ref:.3f}: ratio {auto / ref:.3f} (target <= 0.95)"
        )
    for label in (lab for lab in main.index if "(mean of" in lab):
        row = main.loc[label]
        if stats:
            best = row[stats].astype(float).idxmin()
            lines.append(
                f"panel {label}: {AUTO} {row[AUTO]:.3f}, best statistical model {best} "
                f"{row[best]:.3f} (target: below)"
            )
    ratio = main[AUTO] / main["SeasonalNaive"]
    lines.append(
        f"{AUTO} / SeasonalNaive per row: "
        + ", ".join(f"{k.split(' (')[0]} {v:.3f}" for k, v in ratio.items())
    )
    worse = [k.split(" (")[0] for k, v in ratio.items() if v > 1.05]
    lines.append(f"rows where {AUTO} is worse than SeasonalNaive by > 5 %: {worse or 'none'}")
    return lines


def markdown(table: pd.DataFrame) -> str:
    """The table as a markdown table, 3 decimals (seconds and counts: whole numbers)."""
    lines = ["| | " + " | ".join(table.columns) + " |", "|---" * (len(table.columns) + 1) + "|"]
    for label, row in table.iterrows():
        whole = label in ("seconds", "worse than SNaive >10 %")
        cells = ["" if pd.isna(v) else f"{v:.0f}" if whole else f"{v:.3f}" for v in row]
        lines.append(f"| {label.strip()} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def records(results: dict[str, Result], catalog: list[Series]) -> list[dict]:
    """Every number: one record per series and model."""
    out = []
    for s in catalog:
        r = results[s.name]
        for model, per in r.mase.items():
            for key, value in per.items():
                out.append(
                    {
                        "dataset": s.name,
                        "series": key,
                        "model": model,
                        "mase": value,
                        "coverage_80": r.coverage[model][key],
                        "dataset_seconds": r.seconds.get(model, math.nan),
                    }
                )
    return out


# ---------------------------------------------------------------- main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--series", default=None, help="comma-separated names (default: all)")
    parser.add_argument("--configs", default=",".join(DEFAULT_CONFIGS), help=f"of {list(CONFIGS)}")
    parser.add_argument("--stats", default=",".join(STATS), help=f"of {STATS}")
    parser.add_argument("--epochs", type=int, default=200)
    parser.add_argument("--patience", type=int, default=20)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--auto-seeds", type=int, default=3, help="auto: seeds per network")
    parser.add_argument("--auto-epochs", type=int, default=100, help="auto: epochs per training")
    parser.add_argument("--n-steps", default="rule", help="rule | auto | an integer")
    parser.add_argument(
        "--max-series", type=int, default=12, help="per panel, evenly from the sorted ids; 0: all"
    )
    parser.add_argument("--arima-any-season", action="store_true", help="AutoARIMA at m > 24 too")
    parser.add_argument("--per-series", action="store_true", help="a panel's series' rows too")
    parser.add_argument("--markdown", action="store_true")
    parser.add_argument("--out", type=Path, default=None, help="FILE.json or FILE.csv")
    parser.add_argument("--work", type=Path, default=None, help="run folders (default: temp)")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a smoke run: the 2 shortest single series, linear and linear+last, 2 epochs, "
        "SeasonalNaive and AutoETS; --series is ignored (without --data and the default "
        "folder absent: two synthetic series)",
    )
    return parser.parse_args(argv)


def check_args(args: argparse.Namespace) -> tuple[list[str], list[str]]:
    configs = [c for c in args.configs.split(",") if c]
    bad = [c for c in configs if c not in CONFIGS and c != AUTO]
    if bad:
        raise ConfigError(f"--configs {bad} unknown; expected some of {[*CONFIGS, AUTO]}")
    stats = [m for m in args.stats.split(",") if m]
    bad = [m for m in stats if m not in STATS]
    if bad:
        raise ConfigError(f"--stats {bad} unknown; expected some of {STATS}")
    if args.n_steps not in ("rule", "auto") and not args.n_steps.isdigit():
        raise ConfigError(f"--n-steps={args.n_steps!r}: expected rule, auto or an integer")
    if args.out is not None and args.out.suffix not in (".json", ".csv"):
        raise ConfigError(f"--out {args.out}: expected a .json or .csv file")
    return configs, stats


def run(args: argparse.Namespace) -> None:
    configs, stats = check_args(args)
    names = [n for n in args.series.split(",") if n] if args.series else None
    example = args.quick and args.data == DEFAULT_DATA and not DEFAULT_DATA.is_dir()
    if args.quick:  # the smoke setting picks its own series
        names = None
    catalog = [] if example else read_catalog(args.data, names)  # a refusal writes nothing
    work = args.work or Path(tempfile.mkdtemp(prefix="bench_accuracy_"))
    if example:
        print(f"note: {DEFAULT_DATA} is absent; --quick runs on two synthetic series")
        catalog = read_catalog(write_example(work / "example_data"), None)
    if args.quick:
        singles = [s for s in catalog if s.id is None]
        rows = {s.name: len(pd.read_csv(s.path)) for s in singles}
        catalog = sorted(singles, key=lambda s: (rows[s.name], s.name))[:2]
        if not catalog:
            raise InputError(f"--quick needs a single series in {args.data}; it has only panels")
        configs, stats, args.epochs = ["linear", "linear+last"], ["SeasonalNaive", "AutoETS"], 2
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    results: dict[str, Result] = {}
    wall = time.perf_counter()
    for s in catalog:
        parts = read_series(s, args.max_series)
        res = results[s.name] = Result()
        use = [m for m in stats if m != "AutoARIMA" or s.season <= MAX_ARIMA_SEASON]
        if len(use) < len(stats) and not args.arima_any_season:
            res.notes.append(f"{s.name}: AutoARIMA skipped at season {s.season} (> 24)")
        else:
            use = stats
        run_stats(s, parts, use, res)
        for config in configs:
            try:
                if config == AUTO:
                    run_auto(s, parts, work, args, res)
                    continue
                run_network(s, parts, config, work, args, res)
            except SeqforecastError as err:  # e.g. a window too short for the season: no score
                res.notes.append(f"{s.name} {config}: not run ({err})")
        print(f"done {s.name} ({len(parts)} series) at {time.perf_counter() - wall:.0f} s")
    models = [m for c in configs for m in ([AUTO, f"{AUTO}/best1"] if c == AUTO else [c])]
    models += stats
    main_rows = table_rows(results, catalog, models, per_series=False)
    shown = table_rows(results, catalog, models, args.per_series)
    table = pd.concat([shown, summary_rows(main_rows, results, catalog, models)])
    print(f"MASE over {N_ORIGINS} origins at the end, {LEVEL} % coverage in %, seed {args.seed}")
    if args.markdown:
        print(markdown(table))
    else:
        with pd.option_context("display.width", 250, "display.max_columns", 50):
            print(table.round(3).to_string())
    for line in target_lines(main_rows, catalog, models):
        print(line)
    for s in catalog:
        for note in dict.fromkeys(results[s.name].notes):
            print(f"note: {note}")
    print(f"wall time: {time.perf_counter() - wall:.0f} s; runs under {work}")
    if args.out is not None:
        recs = records(results, catalog)
        if args.out.suffix == ".json":
            args.out.write_text(json.dumps({"table": json.loads(table.to_json()), "rows": recs}))
        else:
            pd.DataFrame(recs).to_csv(args.out, index=False)
        print(f"written: {args.out}")


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    try:
        run(args)
    except SeqforecastError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()

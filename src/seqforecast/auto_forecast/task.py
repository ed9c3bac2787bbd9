"""``forecast(cfg)``: the task of ``scripts/forecast.py`` (conf/forecast.yaml, docs/forecast.md).

Reads the table, settles season and horizon, backtests the pool on the validation origins,
combines the best and writes, under ``output_dir``: ``validation.csv`` (each candidate's and
the combination's MAE and MASE per series, the statistical models' 80 % coverage),
``validation_forecasts.csv`` (their forecasts at the validation origins, long),
``choice.json``, ``forecast.csv`` (``unique_id, ds, auto, auto-lo-L, auto-hi-L, <candidate>
...``), ``forecast.png`` and, with ``test=N``, ``test.csv`` (the long backtest at the test
origins) and ``test_scores.csv``.
"""

from __future__ import annotations

import json
import logging
import math
import time
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf

from seqforecast.auto import infer_season
from seqforecast.auto_forecast.artifact import write_model
from seqforecast.auto_forecast.combine import COMBINERS, combine, conformal, members
from seqforecast.auto_forecast.pool import NETWORKS, resolve_pool
from seqforecast.auto_forecast.tables import future_table, long_table, read_panel, targets, times
from seqforecast.auto_forecast.validate import LEVEL, Origins, Panel, candidate_forecasts
from seqforecast.errors import ConfigError, InputError

log = logging.getLogger(__name__)

AUTO = "auto"  # the combination's column
MIN_TRAIN = 8  # training rows before the validation span, at least (and 2 seasons)
MAX_AUTO_HORIZON = 24
MIN_AUTO_HORIZON = 6


def forecast(cfg: DictConfig) -> dict[str, Any]:
    """Run the automatic forecast of ``cfg`` (see the module doc); a summary dict."""
    start = time.perf_counter()
    _check_settings(cfg)
    panel = read_panel(cfg.input, cfg.data.time, cfg.data.target, cfg.data.id)
    if cfg.season == "auto":
        stamps = [f[panel.time] for f in panel.frames] if panel.time else None
        season, why = infer_season(stamps)
    else:
        season, why = int(cfg.season), "given"
    horizon = cfg.horizon
    if horizon == "auto":
        horizon = max(MIN_AUTO_HORIZON, min(2 * season, MAX_AUTO_HORIZON))
    o = Origins(horizon, cfg.n_val, cfg.test, season)
    _check_rows(panel, o)
    pool, skipped = resolve_pool(list(cfg.pool), season)
    _check_panel_ends(panel, [n for n in pool if n in NETWORKS])
    log.info("season %d (%s), horizon %d, pool %s", season, why, horizon, pool)
    if any(n in NETWORKS for n in pool):  # each training's checkpoint lines: many, not news
        for name in ("lightning.pytorch", "lightning.pytorch.utilities.rank_zero"):
            logging.getLogger(name).setLevel(logging.WARNING)
    settings = {
        "seeds": cfg.seeds,
        "epochs": cfg.epochs,
        "target": cfg.data.target,
        "accelerator": cfg.accelerator,
        "n_jobs": cfg.n_jobs,
        "train_overrides": list(cfg.train_overrides),
    }
    out = Path(cfg.output_dir)
    fc, failed = candidate_forecasts(panel, pool, o, settings, out / "runs")
    skipped.update(failed)
    hist = panel.head(cfg.test)
    val_cut = o.val(panel)  # [S, n_val]
    val = long_table(hist, val_cut, horizon, {n: f["val"] for n, f in fc.items()}, fc)
    val_scores = score(val, list(fc), hist.head(o.span), season)
    ranking = mean_mase(val_scores)
    chosen = members(ranking, cfg.top_k)
    val_auto = combine([fc[m]["val"] for m in chosen], cfg.combine)  # [S, n_val, h]
    val[AUTO] = val_auto.reshape(-1)
    val_scores = score(val, [*fc, AUTO], hist.head(o.span), season)
    ranking = mean_mase(val_scores)  # the combination's too, for the record
    val_actual = targets(hist, val_cut, horizon)
    levels = list(cfg.levels)

    def with_bounds(f: np.ndarray) -> dict[str, np.ndarray]:
        cols = {AUTO: f}
        for level in levels:
            lo, hi = conformal(val_actual, val_auto, f, level, cfg.interval_scale)
            cols |= {f"{AUTO}-lo-{level:g}": lo, f"{AUTO}-hi-{level:g}": hi}
        return cols

    future = combine([fc[m]["future"] for m in chosen], cfg.combine)  # [S, h]
    cols = with_bounds(future[:, np.newaxis])
    cols |= {n: f["future"][:, np.newaxis] for n, f in fc.items()}
    forecast_table = future_table(hist, horizon, cols)
    out.mkdir(parents=True, exist_ok=True)
    val_scores.to_csv(out / "validation.csv", index=False)
    val.to_csv(out / "validation_forecasts.csv", index=False)
    forecast_table.to_csv(out / "forecast.csv", index=False)
    choice = {
        "rule": f"{cfg.combine} of the best {cfg.top_k} candidates by validation MASE",
        "interval_scale": cfg.interval_scale,
        "members": chosen,
        "weights": {m: 1 / len(chosen) for m in chosen},
        "val_mase": {n: _num(v) for n, v in ranking.items()},
        "skipped": skipped,
        "season": season,
        "season_from": why,
        "horizon": horizon,
        "n_val": cfg.n_val,
        "seeds": cfg.seeds,
    }
    summary = {**choice, "outputs": str(out)}
    if cfg.test:
        test_cut = o.tested(panel)
        test_auto = combine([fc[m]["test"] for m in chosen], cfg.combine)
        cols = with_bounds(test_auto) | {n: f["test"] for n, f in fc.items()}
        test = long_table(panel, test_cut, horizon, cols, fc, part="test")
        test_scores = score(test, [*fc, AUTO], hist, season, levels)
        test.to_csv(out / "test.csv", index=False)
        test_scores.to_csv(out / "test_scores.csv", index=False)
        summary["test_mase"] = {n: _num(v) for n, v in mean_mase(test_scores).items()}
        choice["test_mase"] = summary["test_mase"]
    model, _ = write_model(
        out / "model", hist, chosen, out / "runs", season, horizon, cfg.data.target,
        val_actual, val_auto, levels, cfg.combine, cfg.interval_scale,
        fc.get("auto_arima", {}).get("settings"),
    )  # fmt: skip
    choice["model"] = summary["model"] = str(model.parent)
    (out / "choice.json").write_text(json.dumps(choice, indent=1))
    if cfg.plot:
        plot(hist, forecast_table, levels, out / "forecast.png")
    summary["seconds"] = round(time.perf_counter() - start, 1)
    return summary


def _check_settings(cfg: DictConfig) -> None:
    if OmegaConf.is_missing(cfg, "input") or not cfg.input:
        raise ConfigError("input is required: input=<a .csv or .parquet table>")
    for key in ("n_val", "seeds", "epochs", "top_k", "n_jobs"):
        value = cfg[key]
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ConfigError(f"{key}={value!r} is not allowed: expected an integer >= 1")
    h = cfg.horizon
    if h != "auto" and (not isinstance(h, int) or isinstance(h, bool) or h < 1):
        raise ConfigError(f"horizon={h!r} is not allowed: expected auto or an integer >= 1")
    m = cfg.season
    if m != "auto" and (not isinstance(m, int) or isinstance(m, bool) or m < 1):
        raise ConfigError(f"season={m!r} is not allowed: expected auto or an integer >= 1")
    if not isinstance(cfg.test, int) or cfg.test < 0:
        raise ConfigError(f"test={cfg.test!r} is not allowed: expected an integer >= 0")
    if cfg.combine not in COMBINERS:
        raise ConfigError(f"combine={cfg.combine!r} is unknown; expected one of {list(COMBINERS)}")
    scale = cfg.interval_scale
    if not isinstance(scale, int | float) or isinstance(scale, bool) or not 0 < scale < math.inf:
        raise ConfigError(f"interval_scale={scale!r} is not allowed: expected a number > 0")
    levels = OmegaConf.to_container(cfg.levels) if cfg.levels is not None else None
    if not isinstance(levels, list) or not all(
        isinstance(v, int | float) and 0 < v < 100 for v in levels
    ):
        raise ConfigError(
            f"levels={levels!r} is not allowed: expected a list of percents in (0, 100)"
        )


def _check_rows(panel: Panel, o: Origins) -> None:
    test, span, season = o.test, o.span, o.season
    if test and test < o.horizon:
        raise ConfigError(f"test={test}: expected 0 or at least horizon={o.horizon} rows")
    least = max(2 * season, MIN_TRAIN)
    need = test + span + least
    for key, rows in zip(panel.ids, panel.rows, strict=True):
        if rows < need:
            raise InputError(
                f"series {key!r} has {rows} rows, too few: test={test}, the validation span "
                f"(horizon + n_val - 1 = {span}) and {least} training rows (2 seasons of "
                f"{season}, at least {MIN_TRAIN}) need {need}; lower horizon, n_val or test"
            )


def _check_panel_ends(panel: Panel, networks: list[str]) -> None:
    """A panel's networks train one model whose split is by dates: its series end together."""
    if panel.id is None or not networks:
        return
    ends = {str(f[panel.time].iloc[-1]) for f in panel.frames} if panel.time else {"?", ""}
    if len(ends) > 1:
        raise InputError(
            f"pool has {networks}, trained on the whole panel, which needs a date column "
            f"(data.time) and series ending together; the series end at {sorted(ends)[:3]}: "
            "drop the networks from pool"
        )


def score(
    table: pd.DataFrame, models: list[str], train: Panel, season: int, levels: list | None = None
) -> pd.DataFrame:
    """utilsforecast's MAE and MASE (scale: ``train``'s in-sample seasonal naive) of each
    model per series over all origins and steps, and the coverage of the models with bounds
    (the statistical models' own 80 %; ``levels``: the combination's)."""
    from utilsforecast.evaluation import evaluate
    from utilsforecast.losses import coverage, mae, mase

    df = table.drop(columns="cutoff")
    train_df = train.long()
    out = [evaluate(df, [mae, partial(mase, seasonality=season)], models, train_df=train_df)]
    for level in dict.fromkeys([LEVEL, *(levels or [])]):
        have = [m for m in models if f"{m}-lo-{level}" in df]
        if have:
            out.append(evaluate(df, [coverage], have, level=[level]))
    return pd.concat(out, ignore_index=True)


def mean_mase(scores: pd.DataFrame) -> pd.Series:
    """Per model: the mean MASE over the series."""
    return scores[scores["metric"] == "mase"].drop(columns=["unique_id", "metric"]).mean()


def _num(value: float) -> float | None:
    return None if math.isnan(value) else round(float(value), 4)


def plot(panel: Panel, table: pd.DataFrame, levels: list, path: Path) -> None:
    """The last rows of up to 4 series, the combination's forecast and its widest interval."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = panel.ids[:4]
    fig, axes = plt.subplots(len(shown), 1, figsize=(9, 2.6 * len(shown)), squeeze=False)
    for ax, key in zip(axes[:, 0], shown, strict=True):
        s = panel.ids.index(key)
        f = table[table["unique_id"] == key]
        tail = min(panel.rows[s], 4 * len(f))
        ax.plot(
            times(panel, s, np.arange(panel.rows[s] - tail, panel.rows[s])),
            panel.values[s][-tail:],
            color="black",
            label="history",
        )
        ax.plot(f["ds"], f[AUTO], color="tab:blue", label=AUTO)
        if levels:
            top = f"{max(levels):g}"
            ax.fill_between(
                f["ds"],
                f[f"{AUTO}-lo-{top}"],
                f[f"{AUTO}-hi-{top}"],
                color="tab:blue",
                alpha=0.2,
                label=f"{top} % interval",
            )
        ax.set_title(key)
        ax.legend(loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def format_summary(summary: dict[str, Any]) -> str:
    """The lines ``scripts/forecast.py`` prints."""
    lines = [f"season {summary['season']} ({summary['season_from']}), horizon {summary['horizon']}"]
    test = summary.get("test_mase", {})
    lines.append(f"{'candidate':<18}{'val MASE':>10}" + (f"{'test MASE':>11}" if test else ""))
    for name, v in sorted(summary["val_mase"].items(), key=lambda kv: (kv[1] is None, kv[1] or 0)):
        row = f"{name:<18}{'' if v is None else f'{v:.3f}':>10}"
        if test:
            t = test.get(name)
            row += f"{'' if t is None else f'{t:.3f}':>11}"
        lines.append(row)
    if test:
        lines.append(f"{AUTO:<18}{'':>10}{test[AUTO]:>11.3f}")
    for name, why in summary["skipped"].items():
        lines.append(f"skipped {name}: {why}")
    lines.append(f"chosen: {summary['rule']}: {summary['members']}")
    return "\n".join(lines)

"""Each candidate's forecasts from the validation origins, past the end of the history and
(``test=N``) from the test origins, in the data's units.

Positions: series ``s`` has ``R_s`` rows, the last ``test`` held out, so its history ends at
row ``H_s = R_s - test``. The ``n_val`` validation origins are the cutoff rows ``H_s - h -
n_val .. H_s - h - 1`` (one row apart; the last one's targets end at row ``H_s - 1``), so they
span the last ``h + n_val - 1`` rows of the history; the future forecast starts after row
``H_s - 1``; the test origins are ``H_s - 1 .. R_s - h - 1``. Every array is ``[S, n, h]``
(series, origins, steps ahead) or ``[S, h]`` for the future.

Statistical models are refitted at each origin (statsforecast's ``cross_validation(refit=
True)``, each model fitted once per origin). A network setting is trained ``seeds`` times
(the seeds' mean is its forecast) on the rows before the validation span, forecasting every
validation origin from its windows, then trained again on the whole history (same settings,
a fixed number of epochs, the final weights: no span is held out to pick a checkpoint) for
the future and the test origins.
"""

from __future__ import annotations

import logging
import warnings
from contextlib import nullcontext
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from seqforecast.auto_forecast.pool import NETWORKS, SEASONAL_NAIVE, STATS
from seqforecast.backtest import baselines

log = logging.getLogger(__name__)

Forecasts = dict[str, np.ndarray]  # "val" [S, n_val, h], "future" [S, h], "test" [S, n, h];
# statistical models also "val-lo"/"val-hi", "test-lo"/"test-hi" at LEVEL; auto_arima also
# "settings", its ARIMA per series (a list of plain dicts)
MIN_WINDOWS = 8  # training windows a season-long input window must leave
LEVEL = 80  # the statistical models' own interval, scored as validation coverage
ARIMA = "auto_arima"  # its order searched once per series (stat_forecasts)


@dataclass(frozen=True)
class Panel:
    """Series of one table in time order: ids, target values ``[R_s]``, times and rows."""

    ids: list[str]
    values: list[np.ndarray]  # per series [R_s] float64
    frames: list[pd.DataFrame]  # per series: its rows of the table (a training file's rows)
    time: str
    id: str | None  # the table's id column (None: a single series)

    @property
    def rows(self) -> np.ndarray:
        return np.array([len(v) for v in self.values])  # [S]

    def head(self, drop: int) -> Panel:
        """Each series without its last ``drop`` rows."""
        if drop == 0:
            return self
        return replace(
            self,
            values=[v[:-drop] for v in self.values],
            frames=[f.iloc[:-drop] for f in self.frames],
        )

    def long(self) -> pd.DataFrame:
        """``unique_id, ds, y`` with ``ds`` the row number (statsforecast's ``freq=1``)."""
        return pd.concat(
            [
                pd.DataFrame({"unique_id": k, "ds": np.arange(len(v)), "y": v})
                for k, v in zip(self.ids, self.values, strict=True)
            ],
            ignore_index=True,
        )


def cutoffs(ends: np.ndarray, horizon: int, n: int) -> np.ndarray:
    """``[S, n]`` cutoff rows, one apart, the last one's targets ending at row ``ends - 1``."""
    return (ends - horizon - n)[:, np.newaxis] + np.arange(n)  # [S, n]


@dataclass(frozen=True)
class Origins:
    """Where a run forecasts from (the module doc's positions): ``horizon`` steps ahead,
    ``n_val`` validation origins, the last ``test`` rows held out, the data's ``season``."""

    horizon: int
    n_val: int
    test: int
    season: int

    @property
    def span(self) -> int:
        """The rows the validation origins' targets span: ``horizon + n_val - 1``."""
        return self.horizon + self.n_val - 1

    def val(self, panel: Panel) -> np.ndarray:
        """``[S, n_val]`` validation cutoffs of ``panel`` (its last ``test`` rows held out)."""
        return cutoffs(panel.rows - self.test, self.horizon, self.n_val)

    def future(self, panel: Panel) -> np.ndarray:
        """``[S, 1]`` the last row of each series' history."""
        return (panel.rows - self.test - 1)[:, np.newaxis]

    def tested(self, panel: Panel) -> np.ndarray:
        """``[S, test - horizon + 1]`` test cutoffs of ``panel``."""
        return cutoffs(panel.rows, self.horizon, self.test - self.horizon + 1)


def seasonal_naive(panel: Panel, o: Origins) -> Forecasts:
    """Seasonal naive per series: the backtest's ``baselines.seasonal_naive``."""

    def at(c: np.ndarray) -> np.ndarray:  # [S, n] cutoffs -> [S, n, h]
        return np.stack(
            [
                baselines.seasonal_naive(v, c[s], o.horizon, o.season)
                for s, v in enumerate(panel.values)
            ]
        )

    out = {"val": at(o.val(panel)), "future": at(o.future(panel))[:, 0]}
    if o.test:
        out["test"] = at(o.tested(panel))
    return out


def stat_forecasts(panel: Panel, names: list[str], o: Origins, n_jobs: int) -> dict[str, Forecasts]:
    """statsforecast's models ``names`` (keys of :data:`STATS`): validation and test origins
    by ``cross_validation(refit=True)``, the future by ``forecast`` on the history.

    AutoARIMA's order search runs once per series, on the rows up to the first validation
    origin; at every origin and for the future the ``ARIMA`` of that order is re-estimated
    ("model selected once, parameters refitted"): the search is most of its cost, and the
    validation scores stay honest (the order saw none of the validation targets)."""
    from statsforecast import StatsForecast, models

    hist = panel.head(o.test)
    chosen = [
        getattr(models, STATS[n])(season_length=o.season, alias=n) for n in names if n != ARIMA
    ]
    tables = {}  # candidate -> its (validation, future, test or None) tables
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if chosen:
            sf = StatsForecast(models=chosen, freq=1, n_jobs=n_jobs)
            run = _stat_run(sf, panel, o)
            tables |= {n: run for n in names if n != ARIMA}
        if ARIMA in names:
            first = o.val(panel)[:, 0]  # [S] the first validation origin
            runs = []
            orders = arima_orders(hist, first + 1, o.season, n_jobs)
            for s, order in enumerate(orders):
                model = models.ARIMA(**arima_args(order), alias=ARIMA)
                sf = StatsForecast(models=[model], freq=1, n_jobs=1)  # one order per series
                one = replace(
                    panel, ids=[panel.ids[s]], values=[panel.values[s]], frames=[panel.frames[s]]
                )
                runs.append(_stat_run(sf, one, o))
            tables[ARIMA] = tuple(
                None if r[0] is None else pd.concat(r) for r in zip(*runs, strict=True)
            )
    for message in dict.fromkeys(str(w.message).splitlines()[0][:160] for w in caught):
        log.info("statsforecast: %s", message)
    n_test = o.test - o.horizon + 1
    out = {}
    for n in names:
        val, future, tested = tables[n]
        f = {"future": _by_series(future, n, panel.ids, 1)[:, 0]}
        for part, suffix in (("", ""), ("-lo", f"-lo-{LEVEL}"), ("-hi", f"-hi-{LEVEL}")):
            f["val" + part] = _by_series(val, n + suffix, panel.ids, o.n_val)
            if tested is not None:
                f["test" + part] = _by_series(tested, n + suffix, panel.ids, n_test)
        out[n] = f
    if ARIMA in names:
        out[ARIMA]["settings"] = orders  # per series: what the ensemble refits (artifact.py)
    return out


def _stat_run(sf, panel: Panel, o: Origins) -> tuple:
    """statsforecast's ``(validation, future, test or None)`` tables of ``sf``'s models."""
    level, h = [LEVEL], o.horizon
    df = panel.head(o.test).long()
    val = sf.cross_validation(df=df, h=h, n_windows=o.n_val, step_size=1, refit=True, level=level)
    future = sf.forecast(df=df, h=h, level=level)
    tested = None
    if o.test:
        tested = sf.cross_validation(
            df=panel.long(), h=h, n_windows=o.test - h + 1, refit=True, level=level
        )
    return val, future, tested


def arima_orders(panel: Panel, rows: np.ndarray, season: int, n_jobs: int) -> list[dict]:
    """Per series, the settings of statsforecast's ``ARIMA`` (:func:`arima_args`): the order,
    season, constant and drift that ``AutoARIMA`` picks on its first ``rows [S]`` values."""
    from statsforecast import StatsForecast, models

    first = replace(panel, values=[v[:r] for v, r in zip(panel.values, rows, strict=True)])
    sf = StatsForecast(models=[models.AutoARIMA(season_length=season)], freq=1, n_jobs=n_jobs)
    sf.fit(df=first.long())
    fitted = dict(zip(sf.uids, sf.fitted_[:, 0], strict=True))  # statsforecast sorts the ids
    out = []
    for key in panel.ids:
        p, q, sp, sq, m, d, sd = (int(v) for v in fitted[key].model_["arma"])
        coef = fitted[key].model_["coef"]
        out.append(
            {
                "order": [p, d, q],
                "seasonal_order": [sp, sd, sq],
                "season_length": m,
                "include_mean": "intercept" in coef,
                "include_drift": "drift" in coef,
            }
        )
    return out


def arima_args(settings: dict) -> dict:
    """``ARIMA``'s keyword arguments from plain settings (the orders as tuples)."""
    return {k: tuple(v) if isinstance(v, list) else v for k, v in settings.items()}


def _by_series(table: pd.DataFrame, column: str, ids: list[str], n: int) -> np.ndarray:
    """A statsforecast column as ``[S, n, h]``, series in ``ids`` order, origins in time."""
    order = ["unique_id", "cutoff", "ds"] if "cutoff" in table else ["unique_id", "ds"]
    t = table.reset_index().sort_values(order)
    groups = dict(iter(t.groupby("unique_id", sort=False)[column]))
    return np.stack([groups[k].to_numpy(np.float64).reshape(n, -1) for k in ids])


def network_forecasts(
    panel: Panel, name: str, o: Origins, settings: dict, folder: Path
) -> Forecasts:
    """The mean over ``settings["seeds"]`` trainings of the network setting ``name``."""
    hist, h, season = panel.head(o.test), o.horizon, o.season
    # One window length for both trainings, from the shorter (validation) history.
    train_rows = int(hist.rows.min()) - o.span - 2  # 2 rows: the trainer's val and test windows
    n_steps = max(1, min(max(2 * season, 2 * h, 8), (train_rows - 1) // 2))
    if n_steps < season <= train_rows - MIN_WINDOWS:  # window_norm=seasonal reads a season
        n_steps = season
    runs: list[Forecasts] = []
    for seed in range(settings["seeds"]):
        common = [*NETWORKS[name], f"seed={seed}", f"n_steps={n_steps}", f"season={season}"]
        where = folder / name / f"seed{seed}"
        fc = _fit(hist.head(o.span), common, settings, where / "val")
        run = {"val": _predict(fc, hist, o.val(panel), h)}
        fc = _fit(hist, common, settings, where / "final")
        run["future"] = _predict(fc, hist, o.future(panel), h)[:, 0]
        if o.test:
            run["test"] = _predict(fc, panel, o.tested(panel), h)
        runs.append(run)
    return {k: np.mean([r[k] for r in runs], axis=0) for k in runs[0]}


def final_checkpoints(folder: Path, name: str) -> list[Path]:
    """The checkpoints of network ``name``'s trainings on the whole history, one per seed."""
    found = sorted((folder / name).glob("seed*/final/run/checkpoints/*.ckpt"))
    if not found:
        raise FileNotFoundError(f"no final checkpoint of {name} under {folder}")
    return found


def _fit(panel: Panel, overrides: list[str], settings: dict, folder: Path):
    """Train a one-step model on all of ``panel``'s rows but the last 2 (the trainer's own
    validation and test windows, unused: fixed epochs, final weights); its forecaster."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from seqforecast import load_forecaster
    from seqforecast.cli import CONF
    from seqforecast.train import train

    folder.mkdir(parents=True, exist_ok=True)
    csv = folder / "series.csv"
    table = pd.concat(panel.frames, ignore_index=True)
    table.to_csv(csv, index=False)
    if panel.id is None:
        split = f"[{len(table) - 2},1,1]"
    else:  # the series end together (checked): the last two dates
        last = max(panel.frames, key=len)[panel.time]
        split = f"['{last.iloc[-2]}','{last.iloc[-1]}']"
    # Inside scripts/forecast.py, Hydra is set up on conf/ already: compose from it.
    within = GlobalHydra.instance().is_initialized()
    with nullcontext() if within else initialize_config_dir(str(CONF), version_base="1.3"):
        cfg = compose(
            "train",
            overrides=[
                *overrides,
                "data=csv",
                f"data.path={csv}",
                f"data.time={panel.time}",
                f"data.target={settings['target']}",
                f"data.split={split}",
                *([f"data.id={panel.id}"] if panel.id else []),
                "horizon=1",
                "levels=[]",
                f"trainer.max_epochs={settings['epochs']}",
                f"trainer.accelerator={settings['accelerator']}",
                "trainer.enable_progress_bar=false",
                "trainer.enable_model_summary=false",
                "callbacks=none",
                "~logger",
                f"output_dir={folder / 'run'}",
                *settings["train_overrides"],
            ],
        )
    return load_forecaster(train(cfg)["best_ckpt"], device="cpu")


def _predict(fc, panel: Panel, cuts: np.ndarray, horizon: int) -> np.ndarray:
    """``[S, n, h]`` forecasts of ``fc`` from cutoff rows ``cuts [S, n]`` of each series."""
    from seqforecast.backtest.neural import model_forecasts

    out = []
    for s, (key, v) in enumerate(zip(panel.ids, panel.values, strict=True)):
        series = None if panel.id is None or fc.series is None else fc.series.index((key,))
        out.append(model_forecasts(fc, v[:, np.newaxis], cuts[s], horizon, series=series))
    return np.stack(out)


def candidate_forecasts(
    panel: Panel, pool: list[str], o: Origins, settings: dict, folder: Path
) -> tuple[dict[str, Forecasts], dict[str, str]]:
    """Every candidate's :data:`Forecasts` and ``{candidate: why}`` for networks that could
    not train (e.g. a history too short for a window of a season)."""
    from seqforecast.errors import SeqforecastError

    out = {SEASONAL_NAIVE: seasonal_naive(panel, o)}
    stats = [n for n in pool if n in STATS]
    if stats:
        out.update(stat_forecasts(panel, stats, o, settings["n_jobs"]))
    failed = {}
    for name in (n for n in pool if n in NETWORKS):
        try:
            out[name] = network_forecasts(panel, name, o, settings, folder)
        except SeqforecastError as err:
            failed[name] = str(err)
            log.warning("%s: not run (%s)", name, err)
    return out, failed

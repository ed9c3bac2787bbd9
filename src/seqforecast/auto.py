"""Settings written ``auto``, resolved from the data before anything is built.

``train(cfg)`` calls :func:`resolve` once, after the config's values are checked (where
``auto`` is allowed for these keys alone) and before anything is built, so the run's
``config.yaml``, the model and the data all see plain integers (``${n_steps}`` and
``${season}`` interpolate the resolved values):

- ``season``: generated data: 1; a file with a date/time column: the season of its median
  spacing (:func:`infer_season`); a file without one, or with numbers for times: 1.
- ``n_steps``: generated data: 50 (the chapter's window); a file: :func:`auto_n_steps` of the
  season, the horizon and the training rows of its series.
- ``callbacks.early_stopping.patience``: :func:`auto_patience` of the validations the
  trainer runs.

An integer given for any of them is kept as it is. docs/your-own-series.md explains the rules.
"""

from __future__ import annotations

import logging
import math
from typing import TYPE_CHECKING, Any

import numpy as np
from omegaconf import DictConfig, OmegaConf

from seqforecast.errors import ConfigError
from seqforecast.rules import AUTO, check

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

CHAPTER_STEPS = 50  # the chapter's window: generated data keeps it
MIN_STEPS = 8  # the shortest window auto picks where the rows allow it
MIN_WINDOWS = 8  # training windows auto keeps where the rows allow it
MIN_PATIENCE = 3  # the patience of callbacks=early_stopping before it could be auto
PATIENCE_SHARE = 0.1  # of the validations a run makes
# (spacing in days, season, name): a median spacing within TOLERANCE of one of them.
DAY = 1.0
FREQUENCIES = (
    (1 / 24, 24, "hourly"),
    (DAY, 7, "daily"),
    (7.0, 52, "weekly"),
    (365.25 / 12, 12, "monthly"),
    (365.25 / 4, 4, "quarterly"),
    (365.25, 1, "yearly"),
)
TOLERANCE = 0.1  # relative: monthly spacings run 28..31 days around 30.4
MAX_DAY_STEPS = 288  # sub-hourly data: a daily season up to 5-minute data, else an hourly one
EARLY_STOPPING = "lightning.pytorch.callbacks.EarlyStopping"


def infer_season(times: list[pd.Series] | None) -> tuple[int, str]:
    """The season of series timed by ``times`` (one ``pd.Series`` per series) and why.

    Dates spaced (median step) about an hour apart: 24; a day: 7, or 5 when no time falls
    on a weekend (business days); a week: 52; a month: 12; a quarter: 4; a year: 1. Under
    an hour: the steps in a day (15 minutes: 96) up to 288 (5 minutes), else the steps in
    an hour (1 minute: 60); under a minute: 1. Between two of these (every 2 hours, say):
    the whole steps in a day when a day holds them evenly (12), else 1. No times, numeric
    times, or spacings too irregular to name (fewer than half within 10% of the median): 1,
    with a warning for the last.
    """
    import pandas as pd

    if not times or not all(pd.api.types.is_datetime64_any_dtype(t) for t in times):
        return 1, "no date/time column"
    steps = np.concatenate([t.diff().iloc[1:].dt.total_seconds().to_numpy() for t in times])
    if len(steps) == 0:
        return 1, "a single time"
    days = steps / 86400.0  # [S]
    median = float(np.median(days))
    if np.mean(np.abs(days / median - 1) <= TOLERANCE) < 0.5:
        log.warning(
            "season=auto: the time steps are irregular (median %s); season 1 (no season): "
            "set season=N to give one",
            pd.Timedelta(days=median),
        )
        return 1, "irregular spacing"
    for spacing, season, name in FREQUENCIES:
        if abs(median / spacing - 1) <= TOLERANCE:
            if spacing == DAY and all((t.dt.dayofweek < 5).all() for t in times):
                return 5, "business days"
            return season, name
    per_day, per_hour = 1 / median, 1 / (24 * median)
    if median < 1 / 1440:  # under a minute
        return 1, "under a minute"
    if median < 1 / 24:
        if round(per_day) <= MAX_DAY_STEPS:
            return round(per_day), f"{round(per_day)} steps a day"
        return round(per_hour), f"{round(per_hour)} steps an hour"
    if median < DAY and abs(per_day - round(per_day)) < TOLERANCE:
        return round(per_day), f"{round(per_day)} steps a day"
    return 1, f"median spacing {pd.Timedelta(days=median)}"


def auto_n_steps(season: int, horizon: int, train_rows: int, where: str = "the data") -> int:
    """The input window for ``train_rows`` training rows: ``max(2 * season, 2 * horizon, 8)``,
    at most ``train_rows - horizon - 7`` (so at least 8 training windows where the rows allow
    it) and at least 2. Fewer than ``horizon + 2`` rows give no window at all: an error.

    Two seasons let the network compare a point with the one a season before; two horizons
    give it more history than it forecasts.
    """
    wanted = max(2 * season, 2 * horizon, MIN_STEPS)
    n = max(2, min(wanted, train_rows - horizon - (MIN_WINDOWS - 1)))
    if train_rows < n + horizon:
        raise ConfigError(
            f"n_steps=auto: {where} has {train_rows} training rows, too few for one window of "
            f"n_steps >= 2 inputs and horizon={horizon}: expected at least {horizon + 2} "
            "(a longer file, a larger training share of data.split, or a smaller horizon)"
        )
    return n


def auto_patience(trainer: Any) -> int:
    """Early stopping's patience (in validations, as Lightning counts it): ``max(3, ceil(0.1
    * V))`` for the ``V`` validations of ``trainer.max_epochs`` epochs (every
    ``check_val_every_n_epoch``-th epoch, ``1 / val_check_interval`` times in one for a
    fraction); 3 without an epoch limit. A run of 20 epochs keeps 3; one of 200 waits 20."""
    epochs = trainer.get("max_epochs")
    if epochs is None and trainer.get("max_steps", -1) in (-1, None):
        epochs = 1000  # Lightning's own default when neither limit is set
    if not isinstance(epochs, int) or epochs < 1:
        return MIN_PATIENCE
    validations = epochs / (trainer.get("check_val_every_n_epoch") or 1)
    interval = trainer.get("val_check_interval", 1.0)
    if isinstance(interval, float) and 0 < interval < 1:
        validations *= math.floor(1 / interval)
    return max(MIN_PATIENCE, math.ceil(PATIENCE_SHARE * validations))


def _file_data(cfg: DictConfig) -> bool:
    import hydra

    from seqforecast.data.files import FileDataModule

    target = OmegaConf.select(cfg, "data._target_", default=None)
    return target is not None and issubclass(hydra.utils.get_class(target), FileDataModule)


def _train_rows(data: Any) -> int:
    """The training rows of the file's series (a panel: the median series')."""
    return int(np.median([data.series_split(s)[0] for s in range(len(data.read().keys))]))


def resolve(cfg: DictConfig) -> DictConfig:
    """Replace ``auto`` in ``season``, ``n_steps`` and early stopping's ``patience`` of a
    composed train config (in place, and returned) by their values, as ``train(cfg)`` does
    first: a config resolved here can be instantiated by hand (``cfg.model``, ``cfg.data``)."""
    season, n_steps = cfg.get("season", 1), cfg.get("n_steps")
    data = None
    if AUTO in (season, n_steps) and _file_data(cfg):
        from seqforecast.config import instantiate

        # The file's rows and times, read with a placeholder window (nothing is cut yet).
        data = instantiate(cfg.data, n_steps=2, season=1)
    if season == AUTO:
        season, why = infer_season(data.read().times) if data is not None else (1, "generated")
        log.info("season=auto: %d (%s)", season, why)
        cfg.season = season
    if n_steps == AUTO:
        if data is None:
            cfg.n_steps = CHAPTER_STEPS
        else:
            horizon = check("horizon", cfg.get("horizon"))
            season = check("season", season)
            cfg.n_steps = auto_n_steps(season, horizon, _train_rows(data), data.path)
            log.info("n_steps=auto: %d", cfg.n_steps)
    for node in (cfg.get("callbacks") or {}).values():
        stopper = isinstance(node, DictConfig) and node.get("_target_") == EARLY_STOPPING
        if stopper and node.get("patience") == AUTO:
            node.patience = auto_patience(cfg.trainer)
    return cfg

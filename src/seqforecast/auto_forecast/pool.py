"""The candidates of the automatic forecast: statistical models and network settings.

Each name is what ``pool=[...]`` takes and the column a candidate's forecasts get. The
networks are the best settings of the accuracy benchmark (docs/accuracy.md): a one-step model
whose window is normalised by its last value plus the seasonal naive (``window_norm=seasonal``),
forecasting the horizon iteratively.
"""

from __future__ import annotations

import importlib.util
import logging

from seqforecast.errors import ConfigError

log = logging.getLogger(__name__)

SEASONAL_NAIVE = "seasonal_naive"  # numpy, always available
STATS = {"auto_ets": "AutoETS", "auto_arima": "AutoARIMA", "auto_theta": "AutoTheta"}
NETWORKS = {
    "gru_seasonal": ["model=gru", "model.window_norm=seasonal"],
    "linear_seasonal": ["model=linear", "model.window_norm=seasonal"],
}
CANDIDATES = [SEASONAL_NAIVE, *STATS, *NETWORKS]
MAX_ARIMA_SEASON = 24  # AutoARIMA's seasonal search past it takes hours (m = 52)


def resolve_pool(names: list[str], season: int) -> tuple[list[str], dict[str, str]]:
    """``(candidates to run, {skipped: why})`` of ``pool=names`` for data of ``season``.

    Seasonal naive always runs (the yardstick of MASE). Without statsforecast (the ``stats``
    extra) its models are skipped with one log line; AutoARIMA is skipped at seasons over 24.
    """
    unknown = [n for n in names if n not in CANDIDATES]
    if unknown:
        raise ConfigError(f"pool={list(names)}: {unknown} unknown; expected some of {CANDIDATES}")
    if not names:
        raise ConfigError(f"pool=[] is empty; expected some of {CANDIDATES}")
    run = [SEASONAL_NAIVE] + [n for n in dict.fromkeys(names) if n != SEASONAL_NAIVE]
    skipped = {}
    if importlib.util.find_spec("statsforecast") is None:
        for n in STATS:
            if n in run:
                skipped[n] = "statsforecast is not installed (pip install 'seqforecast[stats]')"
        if skipped:
            log.info("statsforecast is not installed: the pool is networks + seasonal naive")
    if "auto_arima" in run and season > MAX_ARIMA_SEASON:
        skipped["auto_arima"] = f"season {season} > {MAX_ARIMA_SEASON}: its search is too slow"
    return [n for n in run if n not in skipped], skipped

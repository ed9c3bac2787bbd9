"""statsforecast's ``AutoARIMA`` and ``AutoETS`` as backtest baselines (the ``stats`` extra):
a fresh model per name, and the model a fit chose, as statsforecast names it.

AutoETS may not use the season it is given: past ``season_length`` 24, or with too few rows
for one, statsforecast fits a model without a seasonal component. :func:`fitted_model`
says what was fitted (``ETS(A,N,N)``: no season), so the tables can show it.
"""

from __future__ import annotations

from typing import Any

from seqforecast.errors import ConfigError
from seqforecast.names import STATISTICAL

INSTALL = "pip install 'seqforecast[stats]' (statsforecast)"


def statistical_model(name: str, season: int) -> Any:
    """A fresh statsforecast model for baseline ``name`` (``auto_arima`` | ``auto_ets``)."""
    if name not in STATISTICAL:
        raise ConfigError(
            f"baseline {name!r} is not statistical; expected one of {list(STATISTICAL)}"
        )
    try:
        from statsforecast import models
    except ImportError:
        raise ConfigError(f"baseline {name} needs statsforecast: {INSTALL}") from None
    classes = {"auto_arima": models.AutoARIMA, "auto_ets": models.AutoETS}
    return classes[name](season_length=season)


def fitted_model(model: Any) -> str:
    """What a fit chose: ``ETS(M,A,M)`` (error, trend, season) or ``ARIMA(p,d,q)(P,D,Q)[m]``."""
    if "method" in model.model_:  # AutoETS
        return str(model.model_["method"])
    from statsforecast.arima import arima_string

    return arima_string(model.model_).strip()

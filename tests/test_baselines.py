"""Backtest baselines: naive, seasonal naive and drift against hand formulas; the statsforecast
wrapper against the library's own cross-validation (skipped without statsforecast)."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from conftest import scaled_tol

from seqforecast.backtest.baselines import (
    BASELINES,
    baseline_forecasts,
    drift,
    naive,
    seasonal_naive,
)
from seqforecast.backtest.statistical import statistical_model
from seqforecast.errors import ConfigError
from seqforecast.rules import check

RNG = np.random.default_rng(0)
Y = RNG.normal(size=60).cumsum()  # a random walk
CUTOFFS = np.array([9, 10, 17, 30, 59])  # not evenly spaced: no shortcut may assume it


def test_naive_repeats_the_last_known_value() -> None:
    got = naive(Y, CUTOFFS, 4)
    for i, c in enumerate(CUTOFFS):
        np.testing.assert_array_equal(got[i], [Y[c]] * 4)


@pytest.mark.parametrize("season", [1, 3, 7])
def test_seasonal_naive_against_the_textbook_formula(season: int) -> None:
    horizon = 10  # longer than a season: the last season repeats
    got = seasonal_naive(Y, CUTOFFS, horizon, season)
    for i, c in enumerate(CUTOFFS):
        for j in range(1, horizon + 1):
            k = (j - 1) // season  # Hyndman & Athanasopoulos: y[T + h - m(k + 1)]
            assert got[i, j - 1] == Y[c + j - season * (k + 1)]


def test_seasonal_naive_by_hand() -> None:
    y = np.arange(10.0) ** 2  # 0 1 4 9 16 25 36 49 64 81
    # Origin row 5, season 3: the last season is rows 3, 4, 5 -> 9, 16, 25, then again.
    np.testing.assert_array_equal(seasonal_naive(y, np.array([5]), 7, 3), [[9, 16, 25] * 2 + [9]])


def test_drift_by_hand() -> None:
    y = np.array([1.0, 3.0, 2.0, 6.0, 100.0])  # row 4 lies after the origin
    # Origin row 3: the line through (0, 1) and (3, 6), slope 5/3.
    np.testing.assert_allclose(drift(y, np.array([3]), 3), [[6 + 5 / 3, 6 + 10 / 3, 6 + 5]])
    got = drift(Y, CUTOFFS, 5)
    for i, c in enumerate(CUTOFFS):
        slope = (Y[c] - Y[0]) / c
        np.testing.assert_allclose(got[i], Y[c] + slope * np.arange(1, 6))


def test_numpy_baselines_ignore_fit_rows() -> None:
    for name in ("naive", "seasonal_naive", "drift"):
        a, fitted = baseline_forecasts(name, Y, CUTOFFS, 3, 2, np.full(5, 5))
        b, _ = baseline_forecasts(name, Y, CUTOFFS, 3, 2, CUTOFFS + 1)
        np.testing.assert_array_equal(a, b)
        assert fitted is None


@pytest.mark.parametrize(
    "value", [["naive", "arima"], ["naive", "naive"], "naive", [1], None], ids=str
)
def test_bad_baseline_lists_name_the_key_and_the_choices(value) -> None:
    with pytest.raises(ConfigError, match=r"baselines=.*not allowed.*seasonal_naive"):
        check("baselines", value)


def test_every_baseline_is_allowed() -> None:
    assert check("baselines", list(BASELINES)) == list(BASELINES)


def test_statistical_baseline_without_statsforecast_says_how_to_install(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "statsforecast", None)  # import statsforecast fails
    with pytest.raises(ConfigError, match=r"auto_arima needs statsforecast: pip install"):
        statistical_model("auto_arima", 1)


# --- statsforecast: the wrapper against the library called directly ---------------------------

SERIES = np.sin(np.arange(120) * 2 * np.pi / 12) + 0.05 * np.arange(120) + RNG.normal(0, 0.2, 120)


def library_cv(model: str, y: np.ndarray, h: int, n_windows: int, step: int, refit) -> np.ndarray:
    """statsforecast's own ``cross_validation`` on ``y``: forecasts ``[n_windows, h]``."""
    sf = pytest.importorskip("statsforecast")
    import pandas as pd

    frame = pd.DataFrame({"unique_id": "s", "ds": np.arange(len(y)), "y": y})
    cv = sf.StatsForecast(models=[statistical_model(model, 12)], freq=1).cross_validation(
        df=frame, h=h, n_windows=n_windows, step_size=step, refit=refit
    )
    column = {"auto_arima": "AutoARIMA", "auto_ets": "AutoETS"}[model]
    return cv.sort_values(["cutoff", "ds"])[column].to_numpy().reshape(n_windows, h)


@pytest.mark.slow
@pytest.mark.parametrize("model", ["auto_arima", "auto_ets"])
def test_statistical_wrapper_refit_never_equals_library_cross_validation(model: str) -> None:
    pytest.importorskip("statsforecast")
    # Fitted once on the first 80 rows (the "training rows"), then run forward from each origin:
    # the library's refit=False fits at its first cutoff, row 79, on the same 80 rows.
    h, step, n = 6, 5, 7
    cutoffs = 79 + step * np.arange(n)
    end = cutoffs[-1] + h + 1  # the library's last window ends at the frame's last row
    ours, _ = baseline_forecasts(model, SERIES, cutoffs, h, 12, np.full(n, 80))
    want = library_cv(model, SERIES[:end], h, n, step, False)
    np.testing.assert_allclose(ours, want, **scaled_tol(want, 1e-6))


@pytest.mark.slow
@pytest.mark.parametrize("model", ["auto_arima", "auto_ets"])
def test_statistical_wrapper_refit_every_n_equals_library_cross_validation(model: str) -> None:
    pytest.importorskip("statsforecast")
    h, step, n, every = 4, 3, 6, 2
    cutoffs = 90 + step * np.arange(n)
    fit_rows = cutoffs[(np.arange(n) // every) * every] + 1  # refit at origins 0, 2, 4
    end = cutoffs[-1] + h + 1
    ours, _ = baseline_forecasts(model, SERIES, cutoffs, h, 12, fit_rows)
    want = library_cv(model, SERIES[:end], h, n, step, every)
    np.testing.assert_allclose(ours, want, **scaled_tol(want, 1e-6))


def test_statistical_wrapper_at_its_fit_origin_equals_fit_then_predict() -> None:
    models = pytest.importorskip("statsforecast.models")
    ours, fitted = baseline_forecasts("auto_ets", SERIES, np.array([99]), 5, 12, np.array([100]))
    model = models.AutoETS(season_length=12).fit(SERIES[:100])
    direct = model.predict(h=5)["mean"]
    np.testing.assert_allclose(ours[0], direct, **scaled_tol(direct, 1e-6))
    assert fitted == model.model_["method"] and fitted.startswith("ETS(")


def test_statistical_models_fit_once_per_fit_rows_and_say_what_they_fitted(monkeypatch) -> None:
    models = pytest.importorskip("statsforecast.models")
    fits = []
    fit = models.AutoETS.fit
    monkeypatch.setattr(models.AutoETS, "fit", lambda self, y: fits.append(len(y)) or fit(self, y))
    # Val and test origins of one backtest share the training rows: one fit for all.
    cutoffs = np.array([60, 61, 62, 90, 95])
    _, fitted = baseline_forecasts("auto_ets", SERIES, cutoffs, 3, 52, np.full(5, 60))
    assert fits == [60]
    # Season 52 with 60 rows: statsforecast fits no seasonal component, and the name says so.
    assert fitted.startswith("ETS(") and fitted.endswith(",N)")
    _, fitted = baseline_forecasts(
        "auto_ets", SERIES, cutoffs, 3, 12, np.array([60] * 3 + [91] * 2)
    )
    assert fits == [60, 60, 91]  # refit: one fit per group

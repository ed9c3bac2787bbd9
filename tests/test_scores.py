"""Forecast scores against hand computations on small cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from seqforecast.errors import ConfigError
from seqforecast.intervals import check_levels
from seqforecast.rules import PROBABILITIES, check_value
from seqforecast.scores import (
    conformal_width,
    coverage,
    crps_from_quantiles,
    interval_scores,
    mae,
    mase,
    pinball,
    rmse,
    seasonal_naive_mae,
    smape,
    winkler,
)


def test_point_errors_by_hand() -> None:
    y = np.array([[1.0, 2.0], [3.0, 0.0]])
    f = np.array([[2.0, 2.0], [1.0, 0.0]])
    assert mae(y, f) == pytest.approx((1 + 0 + 2 + 0) / 4)
    assert rmse(y, f) == pytest.approx(math.sqrt((1 + 0 + 4 + 0) / 4))
    # sMAPE terms: 200*1/3, 0, 200*2/4, 0 (y = f = 0 counts 0)
    assert smape(y, f) == pytest.approx((200 / 3 + 100) / 4)


def test_mase_scales_by_the_in_sample_seasonal_naive_error() -> None:
    history = np.array([1.0, 3.0, 2.0, 6.0, 5.0])
    # season 2: |2-1|, |6-3|, |5-2| -> mean 7/3
    assert seasonal_naive_mae(history, 2) == pytest.approx(7 / 3)
    assert mase(np.array([4.0]), np.array([6.0]), history, 2) == pytest.approx(2 / (7 / 3))
    with pytest.raises(ConfigError, match=r"season_length=5 .*1 to 4"):
        seasonal_naive_mae(history, 5)


def test_interval_scores_counted_by_hand() -> None:
    y = np.array([0.0, 1.0, 5.0, -3.0])
    lo, hi = np.full(4, -1.0), np.full(4, 2.0)
    assert coverage(y, lo, hi) == 50.0  # 0 and 1 inside
    # width 3; misses: 5 is 3 above, -3 is 2 below; 2/alpha = 10 at 80 %
    assert winkler(y, lo, hi, 80) == pytest.approx(3 + 10 * (3 + 2) / 4)
    scores = interval_scores(y, {80: (lo, hi)})
    assert scores == {
        "coverage-80": 50.0,
        "width-80": 3.0,
        "winkler-80": pytest.approx(15.5),
    }


def test_conformal_width_is_the_finite_sample_rank() -> None:
    residuals = np.array([[0.5, -4.0], [-0.1, 1.0], [0.3, 2.0], [0.2, -3.0]])  # N=4, k=2
    # level 50: rank ceil(5 * 0.5) = 3 -> third smallest |r| per column
    np.testing.assert_allclose(conformal_width(residuals, 50), [0.3, 3.0])
    assert np.isinf(conformal_width(residuals, 90)).all()  # rank 5 > 4


def test_conformal_coverage_on_exchangeable_errors() -> None:
    rng = np.random.default_rng(0)
    calib, test = rng.standard_normal((2000, 3)), rng.standard_normal((20000, 3))
    for level in (80, 95):
        w = conformal_width(calib, level)
        assert coverage(test, -w, w) == pytest.approx(level, abs=1.5)


def test_pinball_and_crps_by_hand() -> None:
    y = np.array([1.0])
    q = np.array([[0.0, 1.5]])  # quantiles 0.1 and 0.9
    # tau=0.1, diff=1 -> 0.1; tau=0.9, diff=-0.5 -> 0.1*0.5 = 0.05; mean 0.075
    assert pinball(y, q, [0.1, 0.9]) == pytest.approx(0.075)
    assert crps_from_quantiles(y, q, [0.1, 0.9]) == pytest.approx(0.15)


@pytest.mark.parametrize("levels", [[0, 80], [80, 100], ["80"], 80, [True], [80, 80]])
def test_bad_levels_are_refused(levels) -> None:
    with pytest.raises(ConfigError, match=r"levels=.*percentages in \(0, 100\)"):
        check_levels(levels)


def test_levels_come_back_sorted() -> None:
    assert check_levels([95, 80]) == [80, 95] and check_levels(None) == []


@pytest.mark.parametrize("quantiles", [[0.9, 0.1], [0.0, 0.5], [0.5, 1.0], [], [0.5, 0.5]])
def test_bad_quantiles_are_refused(quantiles) -> None:
    with pytest.raises(ConfigError, match=r"model.quantiles=.*increasing numbers in \(0, 1\)"):
        check_value("model.quantiles", quantiles, PROBABILITIES)

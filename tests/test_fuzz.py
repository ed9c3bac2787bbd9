"""Property-based bad-input sweep: the data and predict entry points work or fail with our error."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from seqforecast.data import SineDataModule, make_windows
from seqforecast.errors import SeqforecastError
from seqforecast.module import ForecastModule
from seqforecast.predict import Forecaster, load_forecaster, read_input

DTYPES = st.sampled_from([np.float32, np.float64, np.int64, np.bool_, np.complex64, object, "U3"])
ANY = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 100),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=4),
    st.lists(st.integers(-3, 50), max_size=4),
)


@st.composite
def arrays(draw: st.DrawFn) -> np.ndarray:
    dtype = draw(DTYPES)
    shape = draw(hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=8))
    if dtype in (np.float32, np.float64):
        return draw(hnp.arrays(dtype, shape, elements=st.floats(width=32, allow_subnormal=False)))
    return np.zeros(shape, dtype=dtype)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    series=arrays(), n_steps=ANY, horizon=ANY, target=st.sampled_from(["next", "seq2seq", "x", 1])
)
def test_make_windows_works_or_fails_clearly(series, n_steps, horizon, target) -> None:
    try:
        x, y = make_windows(series, n_steps, horizon, target)
    except SeqforecastError as err:
        assert "\n" not in str(err)
        return
    assert np.isfinite(x).all() and np.isfinite(y).all()
    assert x.shape[:2] == (series.shape[0], n_steps)


@settings(max_examples=60, deadline=None)
@given(
    n_steps=ANY,
    horizon=ANY,
    n_series=ANY,
    split=st.one_of(ANY, st.lists(st.floats(-1, 1), min_size=3, max_size=3)),
    batch_size=ANY,
)
def test_datamodule_works_or_fails_clearly(n_steps, horizon, n_series, split, batch_size) -> None:
    try:
        dm = SineDataModule(
            n_steps=n_steps, horizon=horizon, n_series=n_series, split=split, batch_size=batch_size
        )
    except SeqforecastError as err:
        assert "\n" not in str(err)
        return
    if dm.n_series <= 200:
        x, _ = dm.arrays("train")
        assert x.shape == (dm.sizes[0], n_steps, 1)


@pytest.fixture(scope="module")
def forecasters() -> list[Forecaster]:
    """Untrained seq2vec and seq2seq models on 8-step windows (predictions need no training)."""
    torch.manual_seed(0)
    nets = [
        ForecastModule(net="rnn", hidden=[4], head="linear", n_steps=8, horizon=2),
        ForecastModule(
            net="gru", hidden=[4], head="per_step", n_steps=8, horizon=3, target="seq2seq"
        ),
        ForecastModule(net="linear", n_steps=8, horizon=1),
    ]
    return [Forecaster(net, torch.device("cpu")) for net in nets]


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    x=arrays(),
    which=st.integers(0, 2),
    ahead=st.one_of(st.none(), ANY),
    window=st.sampled_from(["sliding", "growing", "expanding", 0]),
    batch_size=st.one_of(st.integers(-2, 9), ANY),
)
def test_predict_works_or_fails_clearly(forecasters, x, which, ahead, window, batch_size) -> None:
    forecaster = forecasters[which]
    try:
        y = forecaster.predict(x, ahead=ahead, window=window, batch_size=batch_size)
    except SeqforecastError as err:
        assert "\n" not in str(err)
        return
    assert y.shape == (x.shape[0], forecaster.horizon if ahead is None else ahead)
    assert np.isfinite(y).all()


@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    data=st.one_of(
        st.binary(max_size=300),
        st.text(alphabet="0123456789.,-eEnaif \\n", max_size=120).map(str.encode),
    ),
    suffix=st.sampled_from([".npy", ".csv", ".ckpt", ".txt"]),
)
def test_files_work_or_fail_clearly(tmp_path_factory, forecasters, data, suffix) -> None:
    path = tmp_path_factory.mktemp("fuzz") / f"input{suffix}"
    path.write_bytes(data)
    try:
        if suffix == ".ckpt":
            load_forecaster(path, device="cpu")
        else:
            forecasters[0].predict(read_input(path))
    except SeqforecastError as err:
        assert "\n" not in str(err)

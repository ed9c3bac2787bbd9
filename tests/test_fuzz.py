"""Property-based bad-input sweep: every entry point works or fails with the project's own error."""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from seqforecast.data import SineDataModule, make_windows
from seqforecast.errors import SeqforecastError

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

"""The chapter's synthetic series: two sine waves plus uniform noise.

Each series draws ``freq1, freq2, offset1, offset2 ~ U(0, 1)`` and, with
``t = linspace(0, 1, length)``::

    x(t) = 0.5 sin((t - offset1)(10 freq1 + 10))
         + 0.2 sin((t - offset2)(20 freq2 + 20))
         + 0.1 (U(0, 1) - 0.5)

Worked example (the book's 1-step data)::

    >>> s = two_sine_series(10000, 51, seed=42)
    >>> s.shape, s.dtype
    ((10000, 51, 1), dtype('float32'))
    >>> s[0, :3, 0]                     # X_train[0, :3, 0] in the book's notebook
    array([0.4596948 , 0.31486678, 0.12497123], dtype=float32)
"""

from __future__ import annotations

import numpy as np

__all__ = ["two_sine_series"]


def two_sine_series(n_series: int, length: int, seed: int = 42) -> np.ndarray:
    """Generate ``n_series`` series of ``length`` steps, float32 ``[n_series, length, 1]``.

    ``np.random.RandomState(seed)`` draws the same stream as the book's
    ``np.random.seed(seed)`` + ``np.random.rand``, so seed 42 reproduces the
    book's arrays bit for bit, without touching numpy's global state.
    """
    rng = np.random.RandomState(seed)
    freq1, freq2, offsets1, offsets2 = rng.rand(4, n_series, 1)  # 4 x [N, 1]
    time = np.linspace(0, 1, length)  # [L]
    # Same operations in the same order as the book, in float64, then cast.
    series = 0.5 * np.sin((time - offsets1) * (freq1 * 10 + 10))  # [N, L]
    series += 0.2 * np.sin((time - offsets2) * (freq2 * 20 + 20))
    series += 0.1 * (rng.rand(n_series, length) - 0.5)
    return series[..., np.newaxis].astype(np.float32)  # [N, L, 1]

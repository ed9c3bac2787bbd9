"""Write a small example CSV: ``python -m seqforecast.data.example [sine.csv] [--rows 1000]``.

Columns ``date`` (daily from 2020-01-01), ``value`` (the chapter's two-sine series, one
long one) and ``aux`` (a second, independent two-sine series, for multivariate inputs).

With ``--series S`` it writes a long table (a panel) instead: ``series`` (``s000``, ...),
``date``, ``value`` and ``promo``. Series ``s`` is ``level_s + amp_s * sine_s + 3 * amp_s *
promo`` plus noise (``level_s`` in [0, 10], ``amp_s`` in [0.5, 2], ``sine_s`` a two-sine
series): a promotion, a 0/1 flag on about 10 % of the days drawn independently, lifts that
day's value by three amplitudes. The flag is known in advance, so a model given it
(``data.future_inputs=[promo]``) can forecast the spikes and one without it cannot.

``--future K`` (with ``--series``) appends, after each series' last row, ``K`` rows with an
empty ``value`` and their ``promo`` flag known in advance: the input of a panel forecast
(``panel_future.csv`` in docs/panels.md). The history rows are those written without it.
"""

from __future__ import annotations

import argparse
import io
from pathlib import Path

import numpy as np
import pandas as pd

from seqforecast.data.generate import two_sine_series
from seqforecast.errors import ConfigError
from seqforecast.outputs import atomic_write_text


def example_frame(rows: int = 1000, seed: int = 42, start: str = "2020-01-01") -> pd.DataFrame:
    """``rows`` daily rows: ``date``, ``value`` and ``aux`` (two-sine series, seeds 42 and 43)."""
    if not isinstance(rows, int) or isinstance(rows, bool) or rows < 3:
        raise ConfigError(f"rows must be an integer >= 3, got {rows!r}")
    value = two_sine_series(1, rows, seed=seed)[0, :, 0]  # [rows]
    aux = two_sine_series(1, rows, seed=seed + 1)[0, :, 0]  # [rows]
    dates = pd.date_range(start, periods=rows, freq="D")
    return pd.DataFrame({"date": dates.strftime("%Y-%m-%d"), "value": value, "aux": aux})


def panel_frame(
    series: int = 50, rows: int = 1000, seed: int = 42, start: str = "2020-01-01", future: int = 0
) -> pd.DataFrame:
    """A long table of ``series`` daily series of ``rows`` rows (module docstring), series
    after series; with ``future``, each series followed by ``future`` rows whose ``value`` is
    empty (NaN) and whose ``promo`` is known."""
    for key, value, low in (("series", series, 1), ("rows", rows, 3), ("future", future, 0)):
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            raise ConfigError(f"{key} must be an integer >= {low}, got {value!r}")
    rng = np.random.default_rng(seed)
    level = rng.uniform(0, 10, (series, 1))  # [S, 1]
    amp = rng.uniform(0.5, 2, (series, 1))  # [S, 1]
    promo = (rng.random((series, rows)) < 0.1).astype(int)  # [S, rows]
    noise = rng.normal(0, 0.05, (series, rows))  # [S, rows]
    sine = two_sine_series(series, rows, seed=seed)[..., 0]  # [S, rows]
    value = level + amp * (sine + 3 * promo + noise)  # [S, rows]
    # The future's flags come from a stream of their own, so the history is the same with or
    # without them.
    promo_ahead = (np.random.default_rng([seed, 1]).random((series, future)) < 0.1).astype(int)
    value = np.concatenate([value, np.full((series, future), np.nan)], axis=1)  # [S, rows + K]
    promo = np.concatenate([promo, promo_ahead], axis=1)  # [S, rows + K]
    dates = pd.date_range(start, periods=rows + future, freq="D").strftime("%Y-%m-%d")
    return pd.DataFrame(
        {
            "series": np.repeat([f"s{i:03d}" for i in range(series)], rows + future),
            "date": np.tile(dates, series),
            "value": value.ravel(),
            "promo": promo.ravel(),
        }
    )


def write_example(
    path: str | Path = "sine.csv",
    rows: int = 1000,
    seed: int = 42,
    series: int | None = None,
    future: int = 0,
) -> Path:
    """Write :func:`example_frame` (or, with ``series``, :func:`panel_frame` with ``future``
    rows per series) to ``path`` (atomically) and return the path."""
    if series is None and future:
        raise ConfigError("future rows are written for a panel only: give series as well")
    frame = (
        example_frame(rows, seed)
        if series is None
        else panel_frame(series, rows, seed, future=future)
    )
    buf = io.StringIO()
    frame.to_csv(buf, index=False, float_format="%.6f")
    return atomic_write_text(path, buf.getvalue())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", nargs="?", default="sine.csv")
    parser.add_argument("--rows", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--series", type=int, default=None, help="write a panel of S series")
    parser.add_argument(
        "--future",
        type=int,
        default=0,
        help="with --series: K rows per series past its end, value empty, promo known",
    )
    args = parser.parse_args(argv)
    if args.future and args.series is None:
        parser.error("--future needs --series (future rows are written for a panel)")
    if args.future < 0:
        parser.error(f"--future must be >= 0, got {args.future}")
    print(write_example(args.path, args.rows, args.seed, args.series, args.future))


if __name__ == "__main__":
    main()

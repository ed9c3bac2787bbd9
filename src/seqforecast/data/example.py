"""Write a small example CSV: ``python -m seqforecast.data.example [sine.csv] [--rows 1000]``.

Columns ``date`` (daily from 2020-01-01), ``value`` (the chapter's two-sine series, one
long one) and ``aux`` (a second, independent two-sine series, for multivariate inputs).

With ``--series S`` it writes a long table (a panel) instead: ``series`` (``s000``, ...),
``date``, ``value`` and ``promo``. Series ``s`` is ``level_s + amp_s * sine_s + 3 * amp_s *
promo`` plus noise (``level_s`` in [0, 10], ``amp_s`` in [0.5, 2], ``sine_s`` a two-sine
series): a promotion, a 0/1 flag on about 10 % of the days drawn independently, lifts that
day's value by three amplitudes. The flag is known in advance, so a model given it
(``data.future_inputs=[promo]``) can forecast the spikes and one without it cannot.
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
    series: int = 50, rows: int = 1000, seed: int = 42, start: str = "2020-01-01"
) -> pd.DataFrame:
    """A long table of ``series`` daily series of ``rows`` rows (module docstring), series
    after series."""
    if not isinstance(series, int) or isinstance(series, bool) or series < 1:
        raise ConfigError(f"series must be an integer >= 1, got {series!r}")
    if not isinstance(rows, int) or isinstance(rows, bool) or rows < 3:
        raise ConfigError(f"rows must be an integer >= 3, got {rows!r}")
    rng = np.random.default_rng(seed)
    level = rng.uniform(0, 10, (series, 1))  # [S, 1]
    amp = rng.uniform(0.5, 2, (series, 1))  # [S, 1]
    promo = (rng.random((series, rows)) < 0.1).astype(int)  # [S, rows]
    noise = rng.normal(0, 0.05, (series, rows))  # [S, rows]
    sine = two_sine_series(series, rows, seed=seed)[..., 0]  # [S, rows]
    value = level + amp * (sine + 3 * promo + noise)  # [S, rows]
    dates = pd.date_range(start, periods=rows, freq="D").strftime("%Y-%m-%d")
    return pd.DataFrame(
        {
            "series": np.repeat([f"s{i:03d}" for i in range(series)], rows),
            "date": np.tile(dates, series),
            "value": value.ravel(),
            "promo": promo.ravel(),
        }
    )


def write_example(
    path: str | Path = "sine.csv", rows: int = 1000, seed: int = 42, series: int | None = None
) -> Path:
    """Write :func:`example_frame` (or, with ``series``, :func:`panel_frame`) to ``path``
    (atomically) and return the path."""
    frame = example_frame(rows, seed) if series is None else panel_frame(series, rows, seed)
    buf = io.StringIO()
    frame.to_csv(buf, index=False, float_format="%.6f")
    return atomic_write_text(path, buf.getvalue())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", nargs="?", default="sine.csv")
    parser.add_argument("--rows", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--series", type=int, default=None, help="write a panel of S series")
    args = parser.parse_args(argv)
    print(write_example(args.path, args.rows, args.seed, args.series))


if __name__ == "__main__":
    main()

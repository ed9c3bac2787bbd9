"""Write a small example CSV: ``python -m seqforecast.data.example [sine.csv] [--rows 1000]``.

Columns ``date`` (daily from 2020-01-01), ``value`` (the chapter's two-sine series, one
long one) and ``aux`` (a second, independent two-sine series, for multivariate inputs).
"""

from __future__ import annotations

import argparse
import io
from pathlib import Path

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


def write_example(path: str | Path = "sine.csv", rows: int = 1000, seed: int = 42) -> Path:
    """Write :func:`example_frame` to ``path`` (atomically) and return the path."""
    buf = io.StringIO()
    example_frame(rows, seed).to_csv(buf, index=False, float_format="%.6f")
    return atomic_write_text(path, buf.getvalue())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", nargs="?", default="sine.csv")
    parser.add_argument("--rows", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args(argv)
    print(write_example(args.path, args.rows, args.seed))


if __name__ == "__main__":
    main()

"""Gather a multirun into one table: ``python scripts/summarize.py <multirun dir>``."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("sweep_dir", help="a multirun folder (e.g. multirun/2026-11-30/10-00-00)")
    parser.add_argument("--metric", default="val/mse_last", help="sort key (default val/mse_last)")
    args = parser.parse_args(argv)

    from seqforecast.errors import SeqforecastError
    from seqforecast.sweep import write_summary

    try:
        md, csv_path, _ = write_summary(args.sweep_dir, args.metric)
    except SeqforecastError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(md.read_text(), end="")
    print(f"written: {md} and {csv_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

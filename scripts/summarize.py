"""Gather a multirun into one table: ``python scripts/summarize.py <multirun dir>``."""

from __future__ import annotations

import argparse

from seqforecast.cli import task_wrapper


@task_wrapper
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("sweep_dir", help="a multirun folder (e.g. multirun/2026-11-30/10-00-00)")
    parser.add_argument("--metric", default="val/mse_last", help="sort key (default val/mse_last)")
    args = parser.parse_args(argv)

    from seqforecast.sweep import write_summary

    md, csv_path, _ = write_summary(args.sweep_dir, args.metric)
    print(md.read_text(), end="")
    print(f"written: {md} and {csv_path}")


if __name__ == "__main__":
    main()

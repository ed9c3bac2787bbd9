"""Rolling-origin backtest: ``python scripts/backtest.py ckpt_path=<best.ckpt> input=<file>``."""

from __future__ import annotations

import sys

import hydra
from omegaconf import DictConfig


@hydra.main(version_base="1.3", config_path="../conf", config_name="backtest")
def main(cfg: DictConfig) -> None:
    from seqforecast.backtest.task import backtest, format_summary
    from seqforecast.errors import SeqforecastError

    try:
        summary = backtest(cfg)
    except SeqforecastError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    print(format_summary(summary))
    print(f"outputs: {cfg.output_dir}")


if __name__ == "__main__":
    main()

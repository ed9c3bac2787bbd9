"""Rolling-origin backtest: ``python scripts/backtest.py ckpt_path=<best.ckpt> input=<file>``."""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from seqforecast.cli import check_first, task_wrapper


@hydra.main(version_base="1.3", config_path="../conf", config_name="backtest")
@task_wrapper
def main(cfg: DictConfig) -> None:
    from seqforecast.backtest.task import backtest, format_summary

    summary = backtest(cfg)
    print(format_summary(summary))
    print(f"outputs: {cfg.output_dir}")


if __name__ == "__main__":
    check_first("backtest")
    main()

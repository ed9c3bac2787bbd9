"""The automatic forecast: ``python scripts/forecast.py input=<file> [horizon=N] [data.id=...]``."""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from seqforecast.cli import check_first, task_wrapper


@hydra.main(version_base="1.3", config_path="../conf", config_name="forecast")
@task_wrapper
def main(cfg: DictConfig) -> None:
    from seqforecast.auto_forecast.task import forecast, format_summary

    summary = forecast(cfg)
    print(format_summary(summary))
    print(f"outputs: {cfg.output_dir}  ({summary['seconds']:.1f} s)")


if __name__ == "__main__":
    check_first("forecast")
    main()

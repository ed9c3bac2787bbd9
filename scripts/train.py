"""Train a forecaster: ``python scripts/train.py model=seq2seq`` (overrides, ``-m`` sweeps)."""

from __future__ import annotations

import math

import hydra
from omegaconf import DictConfig

from seqforecast.cli import check_first, task_wrapper


@hydra.main(version_base="1.3", config_path="../conf", config_name="train")
@task_wrapper(training=True)
def main(cfg: DictConfig) -> float:
    from seqforecast.intervals import shift_warnings
    from seqforecast.seeds import train_seeds
    from seqforecast.train import format_table, log_through_hydra

    log_through_hydra()
    metrics = train_seeds(cfg)
    if not metrics:  # a distributed worker: rank 0 evaluates and reports
        return math.nan
    print(format_table(metrics))
    for line in shift_warnings(metrics):
        print(f"warning: {line}")
    print(f"outputs: {cfg.output_dir}  (device {metrics['device']}, {metrics['wall_s']:.1f} s)")
    return float(metrics.get(cfg.monitor, math.nan))  # absent when no validation ran


if __name__ == "__main__":
    check_first("train")
    main()

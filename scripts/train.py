"""Train a forecaster: ``python scripts/train.py model=seq2seq`` (overrides, ``-m`` sweeps)."""

from __future__ import annotations

import math
import sys

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from seqforecast.cli import check_first, refuse


@hydra.main(version_base="1.3", config_path="../conf", config_name="train")
def main(cfg: DictConfig) -> float:
    from seqforecast.callbacks import TrainingInterrupted
    from seqforecast.errors import SeqforecastError
    from seqforecast.intervals import shift_warnings
    from seqforecast.train import format_table, log_through_hydra, train

    log_through_hydra()
    sweeping = HydraConfig.get().mode == RunMode.MULTIRUN
    try:
        metrics = train(cfg)
    except TrainingInterrupted as err:
        print(f"interrupted: {err}", file=sys.stderr)
        sys.exit(128 + err.signum)
    except SeqforecastError as err:
        if not sweeping:
            refuse(err)
        print(f"error: {err}", file=sys.stderr)  # the job's status file keeps it too
        return math.nan  # the sweep goes on
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

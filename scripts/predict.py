"""Forecast from a checkpoint: ``python scripts/predict.py ckpt_path=<best.ckpt> [input=x.npy]``."""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from seqforecast.cli import check_first, task_wrapper


@hydra.main(version_base="1.3", config_path="../conf", config_name="predict")
@task_wrapper
def main(cfg: DictConfig) -> float | None:
    from seqforecast.predict import format_summary, predict

    summary = predict(cfg)
    print(format_summary(summary))
    print(f"outputs: {cfg.output_dir}")
    return summary.get("mse")


if __name__ == "__main__":
    check_first("predict")
    main()

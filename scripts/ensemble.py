"""Checkpoints as one ensemble: ``python scripts/ensemble.py 'members={a:[x.ckpt,y.ckpt]}'``."""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from seqforecast.cli import check_first, task_wrapper


@hydra.main(version_base="1.3", config_path="../conf", config_name="ensemble")
@task_wrapper
def main(cfg: DictConfig) -> None:
    from seqforecast.ensemble import build

    summary = build(cfg)
    print(summary["description"])
    print(f"outputs: {cfg.output_dir}")


if __name__ == "__main__":
    check_first("ensemble")
    main()

"""Export a checkpoint: ``python scripts/export.py ckpt_path=<best.ckpt> [format=torchscript]``."""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from seqforecast.cli import check_first, task_wrapper


@hydra.main(version_base="1.3", config_path="../conf", config_name="export")
@task_wrapper
def main(cfg: DictConfig) -> None:
    from seqforecast.export import export

    summary = export(cfg)
    print(summary["description"])
    for path in summary["files"]:
        print(f"  {path}")


if __name__ == "__main__":
    check_first("export")
    main()

"""Serve forecasts over HTTP: ``python scripts/serve.py ckpt_path=<best.ckpt> [port=8000]``."""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from seqforecast.cli import check_first, task_wrapper


@hydra.main(version_base="1.3", config_path="../conf", config_name="serve")
@task_wrapper
def main(cfg: DictConfig) -> None:
    from seqforecast.serve.task import serve

    serve(cfg)


if __name__ == "__main__":
    check_first("serve")
    main()

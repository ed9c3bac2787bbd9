"""Serve forecasts over HTTP: ``python scripts/serve.py ckpt_path=<best.ckpt> [port=8000]``."""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from seqforecast.cli import check_first, refuse


@hydra.main(version_base="1.3", config_path="../conf", config_name="serve")
def main(cfg: DictConfig) -> None:
    from seqforecast.errors import SeqforecastError
    from seqforecast.serve.task import serve

    try:
        serve(cfg)
    except SeqforecastError as err:
        refuse(err)


if __name__ == "__main__":
    check_first("serve")
    main()

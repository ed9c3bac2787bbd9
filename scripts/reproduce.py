"""Reproduce the chapter: ``python scripts/reproduce.py [seeds=3] [only=[lstm,gru]]``."""

from __future__ import annotations

import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

from seqforecast.cli import check_first, task_wrapper


@hydra.main(version_base="1.3", config_path="../conf", config_name="reproduce")
@task_wrapper
def main(cfg: DictConfig) -> None:
    from seqforecast.reproduce import command_line, reproduce
    from seqforecast.train import log_through_hydra

    log_through_hydra()
    command = command_line(sys.argv[1:])  # as the report records it, ready to paste
    reproduce(cfg, Path(__file__).with_name("train.py"), command=command)
    print(Path(cfg.out_dir, "chapter15.md").read_text())


if __name__ == "__main__":
    check_first("reproduce")
    main()

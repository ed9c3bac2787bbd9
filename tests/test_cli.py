"""The real command line: ``scripts/train.py`` run and multirun as subprocesses; bad input."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
from pathlib import Path

import pytest
import torch
from conftest import run_script
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig

TINY = ["data.n_series=48", "data.split=[32,8,8]", "trainer.accelerator=cpu"]


def run_train(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return run_script("train.py", *args, cwd=cwd)


@pytest.mark.slow
def test_train_script_runs_and_prints_table(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    proc = run_train(
        "model=seq2seq", "trainer.max_epochs=1", *TINY, f"hydra.run.dir={run_dir}", cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "mse_last" in proc.stdout and "val" in proc.stdout and "test" in proc.stdout
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["epochs"] == 1 and metrics["best_ckpt"].endswith("best.ckpt")
    assert (run_dir / "checkpoints" / "best.ckpt").exists()
    assert (run_dir / ".hydra" / "overrides.yaml").exists()


@pytest.mark.slow
def test_multirun_of_experiments_gives_each_job_its_folder(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    proc = run_train(
        "-m",
        "experiment=ch15/linear_10,ch15/deep_rnn_dense",
        "debug=fast_dev_run",
        *TINY,
        f"hydra.sweep.dir={sweep}",
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    for job, net, horizon in (("0", "linear", 10), ("1", "rnn", 1)):
        assert (sweep / job / "metrics.json").exists()
        config = (sweep / job / "config.yaml").read_text()
        assert f"net: {net}" in config and f"horizon: {horizon}\n" in config


def test_bad_value_exits_nonzero_with_one_line(tmp_path: Path, run_main) -> None:
    proc = run_main(
        "train.py", "horizon=0", *TINY, f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path
    )
    assert proc.returncode == 2
    last = proc.stderr.strip().splitlines()[-1]
    assert last == "error: horizon=0 is not allowed: expected an integer >= 1"
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_unknown_model_option_lists_choices(tmp_path: Path, run_main) -> None:
    proc = run_main("train.py", "model=transformer", cwd=tmp_path)
    assert proc.returncode != 0
    assert "model/transformer" in proc.stderr and "seq2seq" in proc.stderr
    assert list(tmp_path.iterdir()) == []  # nothing composed, nothing written


def test_a_script_run_in_process_leaves_no_state_behind(tmp_path: Path, run_main) -> None:
    root = logging.getLogger()
    before = (list(root.handlers), root.level, os.getcwd(), torch.get_num_threads())
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    run_dir = tmp_path / "run"
    proc = run_main("train.py", "model=naive", *TINY, f"hydra.run.dir={run_dir}", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "mse_last" in proc.stdout and (run_dir / "train.log").exists()  # Hydra's file log
    assert not GlobalHydra.instance().is_initialized() and not HydraConfig.initialized()
    assert (list(root.handlers), root.level, os.getcwd(), torch.get_num_threads()) == before
    assert {sig: signal.getsignal(sig) for sig in handlers} == handlers

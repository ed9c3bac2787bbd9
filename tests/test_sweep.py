"""Sweeps and scale-out: results table, Optuna resume, joblib, SLURM config, CPU DDP."""

from __future__ import annotations

import csv
import json
import os
import statistics
from pathlib import Path

import pytest
import torch
from conftest import CONF, compose_cfg, run_script
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig

from seqforecast.sweep import collect, summarize, to_markdown
from seqforecast.train import parallel_thread_share, set_threads, train

TINY = ["data.n_series=96", "data.split=[64,16,16]", "trainer.accelerator=cpu"]


@pytest.mark.slow
def test_summary_keeps_failed_jobs_and_sorts(tmp_path: Path, run_main) -> None:
    # A multirun on Hydra's basic launcher runs its jobs in the calling process, as here.
    sweep = tmp_path / "sweep"
    proc = run_main(
        "train.py",
        "-m",
        "model=linear",
        "model.lr=0.01,-1,0.001",
        "debug=fast_dev_run",
        *TINY,
        f"hydra.sweep.dir={sweep}",
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "error: model.lr=-1 is not allowed" in proc.stderr
    with (sweep / "summary.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [r["status"] for r in rows] == ["finished", "finished", "failed"]  # failed sort last
    assert "model.lr=-1 is not allowed" in rows[2]["error"]
    values = [float(r["val/mse_last"]) for r in rows[:2]]
    assert values == sorted(values)
    # The same table from the command line.
    again = run_main("summarize.py", str(sweep), cwd=tmp_path)
    assert again.returncode == 0 and "| failed |" in again.stdout


def test_summarize_bad_folder_is_one_line(tmp_path: Path, run_main) -> None:
    proc = run_main("summarize.py", str(tmp_path / "nope"), cwd=tmp_path)
    assert proc.returncode == 2
    assert (
        proc.stderr.strip()
        == f"error: {tmp_path / 'nope'} is not a folder; expected a multirun sweep folder"
    )


def test_seed_repeats_get_mean_and_std() -> None:
    rows = [
        {
            "job": str(i),
            "overrides": f"model.lr={lr} seed={s}",
            "status": "finished",
            "val/mse_last": v,
        }
        for i, (lr, s, v) in enumerate(
            [(0.1, 1, 1.0), (0.1, 2, 3.0), (0.01, 1, 0.5), (0.01, 2, 0.7)]
        )
    ]
    out = summarize(rows)
    assert [r["job"] for r in out] == ["2", "3", "0", "1"]
    assert out[0]["val/mse_last mean"] == pytest.approx(0.6)
    assert out[0]["val/mse_last std"] == pytest.approx(0.1414213, rel=1e-6)
    assert out[2]["val/mse_last mean"] == pytest.approx(2.0) and out[2]["seeds"] == 2
    assert "| 0.6 |" in to_markdown(out, ["job", "val/mse_last mean"])


@pytest.mark.smoke
@pytest.mark.slow
def test_optuna_search_persists_and_resumes(tmp_path: Path) -> None:
    optuna = pytest.importorskip("optuna")
    search = tmp_path / "search"
    args = ["-m", "hparams_search=optuna", "model=seq2seq", "debug=fast_dev_run", *TINY]
    args.append("seeds=2")  # each trial's value: the mean over two seeds' runs
    for n_trials in (2, 1):
        proc = run_script(
            "train.py",
            *args,
            f"hydra.sweeper.n_trials={n_trials}",
            f"hydra.sweep.dir={search}",
            cwd=tmp_path,
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
    study = optuna.load_study(study_name="seqforecast", storage=f"sqlite:///{search / 'study.db'}")
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(complete) == 3  # 2 trials, then 1 more in the resumed study
    assert {"model.lr", "model.net", "model.hidden", "data.batch_size"} <= set(complete[0].params)
    rows = collect(search)
    assert len(rows) == 3 and all(r["status"] == "finished" and r["seeds"] == 2 for r in rows)
    means = [statistics.fmean(s["val/mse_last"] for s in r["per_seed"]) for r in rows]
    assert sorted(t.value for t in complete) == pytest.approx(sorted(means), rel=1e-6)


def test_joblib_jobs_get_an_even_share_of_the_cores(monkeypatch) -> None:
    """Under Hydra's joblib launcher, ``threads`` is capped at cores // n_jobs (at least 1).

    The real joblib multirun (two trainings side by side) runs in the chapter reproduction's
    test, which checks each job's thread count.
    """
    pytest.importorskip("hydra_plugins.hydra_joblib_launcher")

    def hydra_cfg(*overrides: str):
        with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
            return compose("train", overrides=list(overrides), return_hydra_config=True)

    before = torch.get_num_threads()
    monkeypatch.setattr(os, "cpu_count", lambda: 16)
    try:
        HydraConfig.instance().set_config(hydra_cfg())  # basic launcher: no share
        assert parallel_thread_share() is None
        for n_jobs, share in ((2, 8), (5, 3), (32, 1), (-1, 1)):
            cfg = hydra_cfg("hydra/launcher=joblib", f"hydra.launcher.n_jobs={n_jobs}")
            HydraConfig.instance().set_config(cfg)
            assert parallel_thread_share() == share, n_jobs
        HydraConfig.instance().set_config(
            hydra_cfg("hydra/launcher=joblib", "hydra.launcher.n_jobs=2")
        )
        for asked, got in ((None, 8), (1, 1), (12, 8)):
            set_threads(asked)
            assert torch.get_num_threads() == got, asked
    finally:
        HydraConfig.instance().cfg = None
        torch.set_num_threads(before)


def test_slurm_launcher_config_composes() -> None:
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("train", overrides=["hydra/launcher=slurm"], return_hydra_config=True)
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("SlurmLauncher")
    assert (launcher.gpus_per_node, launcher.cpus_per_task, launcher.timeout_min) == (1, 4, 120)


@pytest.mark.smoke
@pytest.mark.slow
def test_ddp_cpu_matches_single_process(tmp_path: Path) -> None:
    """Two gloo processes with batch 16 each train exactly the single-process batch-32 run.

    Rank r takes every other index of the same per-epoch permutation, so each DDP step
    averages gradients over the very 32 series of the single-process step; only float
    summation order differs (tolerance 1e-5 relative).
    """
    common = [
        "model=seq2seq",
        "data.n_series=384",
        "data.split=[256,64,64]",
        "trainer.max_epochs=2",
        "trainer.log_every_n_steps=1",  # 8 batches an epoch
    ]
    ddp = run_script(
        "train.py",
        "trainer=ddp_cpu",
        "data.batch_size=16",
        *common,
        f"hydra.run.dir={tmp_path / 'ddp'}",
        cwd=tmp_path,
    )
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    # The single-process reference needs no process of its own.
    train(compose_cfg(tmp_path / "one", "trainer=cpu", "data.batch_size=32", *common, tiny=False))
    got = json.loads((tmp_path / "ddp" / "metrics.json").read_text())
    want = json.loads((tmp_path / "one" / "metrics.json").read_text())
    for key in ("val/mse", "val/mse_last", "test/mse", "test/mse_last"):
        assert got[key] == pytest.approx(want[key], rel=1e-5), key
    ckpt = torch.load(tmp_path / "ddp" / "checkpoints" / "last.ckpt", weights_only=True)
    assert got["epochs"] == want["epochs"] == 2
    # Each rank stepped through its own half: 256 series / 2 ranks / 16 = 8 steps per epoch.
    assert ckpt["global_step"] == 16
    # val/mse_last during DDP fit came from sharded validation reduced across ranks; it must
    # equal the single-device evaluation of the same best checkpoint.
    (state,) = [
        v for k, v in ckpt["callbacks"].items() if k.startswith("ModelCheckpoint") and "val/" in k
    ]
    assert float(state["best_model_score"]) == pytest.approx(got["val/mse_last"], rel=1e-5)
    # Rank 0 alone wrote the run folder; rank 1 left only its log.
    assert sorted(p.name for p in (tmp_path / "ddp").iterdir()) == sorted(
        [
            ".hydra",
            ".lock",  # rank 0's run lock
            "checkpoints",
            "config.yaml",
            "logs",
            "metrics.json",
            "status",
            "train.log",
            "train_ddp_process_1.log",
        ]
    )
    assert (tmp_path / "ddp" / "status").read_text().strip() == "finished"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ddp", "one"]

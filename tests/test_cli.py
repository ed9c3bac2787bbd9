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
from conftest import CONF, run_script
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import OmegaConf

from seqforecast.callbacks import TrainingInterrupted
from seqforecast.cli import check_first, find_refusal, remove_unused_run_dir, task_wrapper
from seqforecast.errors import OutputError, SeqforecastError

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


# --- refusals before Hydra starts the run: one line, exit 2, no folder --------------------------

REFUSED = [
    ("train", ["seed=-1"], "seed=-1 is not allowed: expected an integer from 0 to 4294967295"),
    ("train", ["seed=12345678901234567890"], "seed=12345678901234567890 is not allowed"),
    ("train", ["trainer.precision=7"], "trainer.precision=7 is not allowed: expected one of"),
    ("train", ["+trainer.max_epoch=5"], "trainer.max_epoch is not a setting of Trainer; allowed"),
    ("train", ["trainer.max_epoch=5"], "trainer.max_epoch is not a setting of Trainer; allowed"),
    ("train", ["model.hiden=[32]"], "model.hiden is not a setting of ForecastModule; allowed"),
    ("train", ["+n_step=5"], "n_step is not a setting of train.yaml; did you mean n_steps?"),
    ("train", ["+ahaed=3"], "ahaed is not a setting of train.yaml; allowed: ['callbacks',"),
    ("predict", ["ahaed=3"], "ahaed is not a setting of predict.yaml; did you mean ahead?"),
    ("predict", ["ckpt_path=x", "ahead=100000"], "ahead=100000 exceeds predict's max_ahead=1000"),
    ("train", ["hydra.run.dir=/proc/x"], "/proc/x: No such file or directory (hydra.run.dir"),
    ("export", ["hydra.run.dir=/dev/null/x"], "/dev/null/x: Not a directory (hydra.run.dir"),
    (
        "reproduce",
        ["train_overrides=[trainer.max_epochs=2]"],
        "train_overrides=[trainer.max_epochs=2]: Hydra cannot read list items holding '='; "
        "quote each one, and the whole override for the shell: "
        "\"train_overrides=['trainer.max_epochs=2']\"",
    ),
]


@pytest.mark.parametrize(("config", "overrides", "line"), REFUSED)
def test_a_bad_config_is_refused_before_the_run_starts(config, overrides, line) -> None:
    with pytest.raises(SeqforecastError) as err:
        find_refusal(config, overrides)
    assert str(err.value).startswith(line) and "\n" not in str(err.value)


def test_a_run_dir_below_a_file_is_refused_and_nothing_is_left(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(
        OutputError, match=r"file/run: Not a directory \(hydra.run.dir .*/file/run/a\)"
    ):
        find_refusal("predict", [f"hydra.run.dir={tmp_path / 'file' / 'run' / 'a'}"])
    find_refusal("predict", [f"hydra.run.dir={tmp_path / 'new' / 'run'}"])  # can be made
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]  # probed, then removed


@pytest.mark.parametrize(
    "overrides",
    [
        ["model=seq2seq", "seed=4294967295", "trainer.precision=bf16-mixed"],
        ["model.filters=8"],  # a setting absent from the yaml: Hydra's "+model.filters" hint
        ["--cfg", "job", "seed=-1"],  # flags: Hydra's command line alone
        ["-m", "seed=-1,1"],  # swept values: checked by each job
        ["seed=1,2"],  # Hydra's advice to add --multirun
        ["model=transformer"],  # Hydra's list of the group's options
        ["hydra.run.dir=${nowhere}"],  # Hydra's message on the interpolation
    ],
)
def test_what_is_not_refused_early_goes_to_hydra(overrides: list[str]) -> None:
    check_first("train", overrides)  # returns: hydra.main takes over


def test_a_sweep_refuses_what_every_job_would_refuse_before_it_starts(tmp_path, run_main):
    proc = run_main("train.py", "-m", "seed=1,2", "+n_step=5", cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: n_step is not a setting of train.yaml; did you mean")
    assert list(tmp_path.iterdir()) == []  # no multirun/ folder


def test_a_refused_run_exits_2_in_one_line_and_leaves_no_folder(tmp_path: Path, run_main) -> None:
    for args in (["seed=-1"], ["+n_step=5"]):
        proc = run_main("train.py", *args, cwd=tmp_path)
        assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
        assert proc.stderr.startswith("error: ")
    proc = run_main("predict.py", "ckpt_path=absent.ckpt", cwd=tmp_path)  # refused by the task
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1] == (
        "error: checkpoint not found: absent.ckpt (expected a .ckpt file from train.py)"
    )
    assert list(tmp_path.iterdir()) == []  # Hydra's outputs/<date>/<time> removed


def test_a_training_refused_by_its_data_settings_leaves_no_folder(tmp_path: Path, run_main):
    # The split is checked against n_series when the DataModule is made, inside train:
    # status and config.yaml were written, and go with the folder (no checkpoint, no metrics).
    proc = run_main("train.py", "data.n_series=100", "hydra.run.dir=runs/a", cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].startswith("error: data.split=[7000, 2000, 1000]")
    assert list(tmp_path.iterdir()) == []


def test_a_refused_job_of_a_training_sweep_lets_the_sweep_go_on(tmp_path: Path, run_main):
    proc = run_main("train.py", "-m", "data.n_series=100,90", "hydra.sweep.dir=sweep", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr  # both jobs ran: each refusal is its job's line
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert [e.split(": expected")[0] for e in errors] == [
        f"error: data.split=[7000, 2000, 1000] does not fit data.n_series={n}" for n in (100, 90)
    ]
    for job in ("0", "1"):  # each job's folder keeps its record
        status = (tmp_path / "sweep" / job / "status").read_text()
        assert status.startswith("failed: ") and errors[int(job)][len("error: ") :] in status


def test_the_task_wrapper_gives_each_ending_its_exit_status(capsys) -> None:
    def stop(why: str) -> None:
        raise TrainingInterrupted(why, signal.SIGTERM)

    assert task_wrapper(lambda x: x + 1)(1) == 2  # a task's result passes through
    for training, code, word in ((False, 2, "error"), (True, 128 + 15, "interrupted")):
        with pytest.raises(SystemExit) as end:
            task_wrapper(training=training)(stop)("SIGTERM received")
        assert end.value.code == code
        assert capsys.readouterr().err == f"{word}: SIGTERM received\n"


def test_only_a_run_folder_holding_hydras_files_alone_is_removed(tmp_path: Path) -> None:
    runs = [tmp_path / "outputs" / "day" / name for name in ("empty", "used")]
    for run in runs:
        (run / ".hydra").mkdir(parents=True)
        for name in ("config.yaml", "hydra.yaml", "overrides.yaml"):
            (run / ".hydra" / name).write_text("{}\n")
        (run / "predict.log").write_text("")
    (runs[1] / "predictions.csv").write_text("1\n")
    with pytest.MonkeyPatch.context() as m:
        m.chdir(tmp_path)
        remove_unused_run_dir(runs[0])
        remove_unused_run_dir(runs[1])
        (tmp_path / "outputs" / "day" / "used" / "predictions.csv").unlink()
        m.chdir(runs[1])
        remove_unused_run_dir(runs[1])  # hydra.run.dir=. : the working folder stays
    assert not runs[0].exists() and runs[1].exists()
    (runs[1] / "predictions.csv").write_text("1\n")
    for status in ("failed: ConfigError: x", "finished"):  # a refusal's record goes, not a run's
        (runs[1] / "status").write_text(status)
        with pytest.MonkeyPatch.context() as m:
            m.chdir(tmp_path)
            remove_unused_run_dir(runs[1])
        assert runs[1].exists()  # predictions.csv is not a refusal's
    (runs[1] / "status").unlink()
    assert sorted(p.name for p in runs[1].rglob("*")) == [
        ".hydra", "config.yaml", "hydra.yaml", "overrides.yaml", "predict.log", "predictions.csv"
    ]  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize(
    ("script", "args", "line"),
    [
        ("train.py", ["seed=-1"], "error: seed=-1 is not allowed"),
        ("train.py", ["ahaed=3"], "error: ahaed is not a setting of train.yaml"),
        ("predict.py", ["ckpt_path=x.ckpt", "ahead=100000"], "error: ahead=100000 exceeds"),
        ("export.py", ["hydra.run.dir=/dev/null/x"], "error: /dev/null/x: Not a directory"),
    ],
)
def test_refusals_as_processes_are_one_line_exit_2_no_folder(tmp_path, script, args, line):
    proc = run_script(script, *args, cwd=tmp_path, timeout=60)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.startswith(line) and proc.stderr.count("\n") == 1, proc.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
@pytest.mark.parametrize("script", ["predict", "export", "serve", "backtest", "reproduce"])
def test_help_lists_the_scripts_own_keys_not_the_training_groups(tmp_path, run_main, script):
    proc = run_main(f"{script}.py", "--help", cwd=tmp_path)
    assert proc.returncode == 0 and proc.stdout.startswith(f"python scripts/{script}.py [key=")
    keys = [k for k in OmegaConf.load(CONF / f"{script}.yaml") if k not in ("defaults", "hydra")]
    assert keys and all(f"\n{key}:" in proc.stdout for key in keys)
    assert "Configuration groups" not in proc.stdout and "model: conv_gru" not in proc.stdout
    assert list(tmp_path.iterdir()) == []


def test_train_help_lists_its_groups(tmp_path: Path, run_main) -> None:
    proc = run_main("train.py", "--help", cwd=tmp_path)
    assert proc.returncode == 0 and "== Configuration groups ==" in proc.stdout
    assert "model: conv_gru, deep_rnn, deep_rnn_dense" in proc.stdout

"""Fault tolerance: kill and resume, determinism, non-finite stops, run-folder safety."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import TINY, compose_cfg, script_command, script_env

from seqforecast.errors import ConfigError, InputError, NonFiniteLossError
from seqforecast.outputs import atomic_write_json, has_checkpoint, read_status
from seqforecast.train import train

# Epochs of 176 small batches, one optimizer step each; the signal goes out as epoch 1 starts,
# and five more epochs leave room for a late signal (a loaded machine, or fast compiled layers)
# to land mid-training all the same.
EPOCHS = 6
RUN = [
    "model=seq2seq",
    "data.n_series=1600",
    "data.split=[1408,96,96]",
    "data.batch_size=8",
    f"trainer.max_epochs={EPOCHS}",
    "trainer.accelerator=cpu",
    "deterministic=true",
]


def _script(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    return subprocess.Popen(
        script_command("train.py", *args),
        cwd=cwd,
        env=env or script_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for(path: Path, proc: subprocess.Popen, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None, proc.communicate()[1][-2000:]
        assert time.monotonic() < deadline, f"{path} did not appear"
        time.sleep(0.02)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory) -> dict:
    tmp = tmp_path_factory.mktemp("reference")
    proc = _script(*RUN, f"hydra.run.dir={tmp / 'ref'}", cwd=tmp)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-2000:]
    return json.loads((tmp / "ref" / "metrics.json").read_text())


@pytest.mark.smoke
@pytest.mark.slow
def test_kill_mid_epoch_then_resume_equals_uninterrupted(
    tmp_path: Path, uninterrupted: dict
) -> None:
    # SIGINT from outside, at whatever moment it lands; SIGINT and SIGTERM at a known step,
    # in-process: test_a_signal_stops_the_script_and_resume_continues (SIGTERM at an epoch's
    # end: test_a_sigterm_at_an_epochs_end_interrupts_the_run_too).
    sig = signal.SIGINT
    victim = _script(*RUN, f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path)
    # Let the first epoch end (best.ckpt appears), then interrupt during the second.
    _wait_for(tmp_path / "run" / "checkpoints" / "best.ckpt", victim)
    victim.send_signal(sig)
    _, err = victim.communicate(timeout=120)
    assert victim.returncode == 128 + sig, err[-2000:]
    assert f"{sig.name} received" in err and "resume=" in err
    assert read_status(tmp_path / "run").startswith("interrupted")
    ckpt = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=True)
    # The train loader's position, saved by Lightning with its loop state.
    [position] = ckpt["loops"]["fit_loop"]["state_dict"]["combined_loader"]
    done = position["batches"]
    assert position["epoch"] == ckpt["epoch"], position
    assert 1 <= ckpt["epoch"] < EPOCHS and 0 < done < 176, "the checkpoint should be mid-epoch"
    assert ckpt["global_step"] == 176 * ckpt["epoch"] + done  # one optimizer step per batch
    assert ckpt["train_loss_epoch"][1] == 8 * done  # the epoch's partial loss: rows so far

    resumed = _script(f"resume={tmp_path / 'run'}", *RUN, cwd=tmp_path)
    _, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err[-2000:]
    got = json.loads((tmp_path / "run" / "metrics.json").read_text())
    want = uninterrupted
    # Deterministic CPU run, same data order and RNG: bitwise-equal metrics.
    for key in ("val/mse", "val/mse_last", "test/mse", "test/mse_last"):
        assert got[key] == want[key], key
    assert got["epochs"] == want["epochs"] == EPOCHS and got["resumed_from"]
    assert read_status(tmp_path / "run") == "finished"


# In-process runs of 4 batches an epoch; the signal goes out as global step 6 starts (epoch 1,
# its third batch), and the run stops at that batch's end.
SMALL = ["model=linear", "trainer.max_epochs=3", "deterministic=true"]


@pytest.fixture(scope="module")
def small_reference(tmp_path_factory: pytest.TempPathFactory) -> dict:
    return train(compose_cfg(tmp_path_factory.mktemp("small"), *SMALL))


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_stops_the_script_and_resume_continues(
    tmp_path: Path, run_main, small_reference: dict, sig: signal.Signals
) -> None:
    run = tmp_path / "run"
    at = [
        "+callbacks.preempt._target_=conftest.SignalAt",
        "+callbacks.preempt.step=6",
        f"+callbacks.preempt.signum={int(sig)}",
    ]
    proc = run_main("train.py", *TINY, *SMALL, *at, f"hydra.run.dir={run}", cwd=tmp_path)
    assert proc.returncode == 128 + sig, proc.stderr[-2000:]
    ckpt = run / "checkpoints" / "last.ckpt"
    why = (
        f"{sig.name} received: saved {ckpt} at epoch 1 after 3 batches; continue with resume={run}"
    )
    assert proc.stderr.strip().splitlines()[-1] == f"interrupted: {why}"
    assert read_status(run) == f"interrupted: {why}"
    assert torch.load(ckpt, weights_only=True)["global_step"] == 7  # steps 0..6 done

    again = run_main("train.py", f"resume={run}", *TINY, *SMALL, *at, cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-2000:]
    got = json.loads((run / "metrics.json").read_text())
    for key in ("val/mse", "val/mse_last", "test/mse", "test/mse_last", "epochs"):
        assert got[key] == small_reference[key], key
    assert read_status(run) == "finished"


def test_a_sigterm_at_an_epochs_end_interrupts_the_run_too(
    tmp_path: Path, run_main, small_reference: dict
) -> None:
    # Lightning stops on its own SIGTERMException after the epoch; the run saves there, ends
    # interrupted (not "finished" or exit 0), and resumes to the uninterrupted metrics.
    run = tmp_path / "run"
    at = ["+callbacks.preempt._target_=conftest.SignalAtEpochEnd", "+callbacks.preempt.epoch=0"]
    proc = run_main("train.py", *TINY, *SMALL, *at, f"hydra.run.dir={run}", cwd=tmp_path)
    assert proc.returncode == 128 + signal.SIGTERM, proc.stderr[-2000:]
    assert read_status(run).startswith("interrupted: SIGTERM received")
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["loops"]["fit_loop"]["epoch_progress"]["current"]["completed"] == 1  # epoch 0

    again = run_main("train.py", f"resume={run}", *TINY, *SMALL, cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-2000:]
    got = json.loads((run / "metrics.json").read_text())
    for key in ("val/mse", "val/mse_last", "test/mse", "test/mse_last", "epochs"):
        assert got[key] == small_reference[key], key


# SIGKILLs at seeded random moments, each followed by a recovery (more: SEQFORECAST_KILLS=n).
KILLS = int(os.environ.get("SEQFORECAST_KILLS", "2"))


@pytest.mark.smoke
@pytest.mark.slow
def test_sigkill_at_random_moments_then_resume_equals_uninterrupted(
    tmp_path: Path, uninterrupted: dict
) -> None:
    # A kill may land in start-up, training, a checkpoint write or the final evaluation. After
    # it, resume= continues the run (or, killed before its first checkpoint, a new run takes the
    # stale folder over); either way the run must end with the uninterrupted run's metrics.
    rng = np.random.default_rng(7)
    # TMPDIR on another filesystem (tmpfs) where there is one: nothing may be staged there.
    shm = Path("/dev/shm")
    staging = Path(tempfile.mkdtemp(dir=shm if shm.is_dir() else tmp_path))
    env = {**script_env(), "TMPDIR": str(staging)}
    equal = 0
    for k in range(KILLS):
        run = tmp_path / f"run{k}"
        victim = _script(*RUN, f"hydra.run.dir={run}", cwd=tmp_path, env=env)
        after = float(rng.uniform(1.0, 10.5))
        time.sleep(after)
        victim.kill()
        victim.communicate(timeout=60)
        # Killed in its first last.ckpt write, it holds best.ckpt alone: resume= goes on from it.
        resumable = has_checkpoint(run)
        print(f"kill {k} after {after:.1f} s: status {read_status(run)}, checkpoints {resumable}")
        if resumable:
            again = _script(f"resume={run}", *RUN, cwd=tmp_path)
        else:
            again = _script(*RUN, f"hydra.run.dir={run}", cwd=tmp_path)
        _, err = again.communicate(timeout=300)
        assert again.returncode == 0, err[-2000:]
        got = json.loads((run / "metrics.json").read_text())
        keys = ("val/mse", "val/mse_last", "test/mse", "test/mse_last")
        equal += all(got[key] == uninterrupted[key] for key in keys)
        assert read_status(run) == "finished"
    assert not [p for p in staging.iterdir() if p.suffix in (".ckpt", ".tmp")]
    shutil.rmtree(staging)
    assert equal == KILLS


def test_same_seed_same_metrics(make_cfg, tmp_path: Path) -> None:
    runs = [
        train(
            make_cfg(
                "model=seq2seq",
                "trainer.max_epochs=2",
                "deterministic=true",
                f"output_dir={tmp_path / d}",
            )
        )
        for d in ("a", "b")
    ]
    other = train(
        make_cfg("model=seq2seq", "trainer.max_epochs=2", "seed=7", f"output_dir={tmp_path / 'c'}")
    )
    assert runs[0]["val/mse"] == runs[1]["val/mse"] and runs[0]["test/mse"] == runs[1]["test/mse"]
    assert other["val/mse"] != runs[0]["val/mse"]


def test_non_finite_loss_stops_with_one_line(make_cfg, tmp_path: Path) -> None:
    handlers = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    with pytest.raises(NonFiniteLossError, match=r"epoch 0, batch \d+ .*model.lr=1e\+30"):
        train(make_cfg("model=linear", "model.lr=1e30"))
    assert not (tmp_path / "checkpoints" / "best.ckpt").exists()
    assert read_status(tmp_path).startswith("failed: NonFiniteLossError")
    # A failed fit leaves Ctrl-C and SIGTERM as they were (not PreemptionCheckpoint's flag).
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == handlers


def test_non_finite_input_is_rejected(make_cfg, tmp_path: Path, monkeypatch) -> None:
    from seqforecast.data import sine

    def with_nan(n_series: int, length: int, seed: int) -> np.ndarray:
        series = np.zeros((n_series, length, 1), np.float32)
        series[3, 7, 0] = np.nan
        return series

    monkeypatch.setattr(sine, "two_sine_series", with_nan)
    with pytest.raises(InputError, match=r"1 NaN/inf values \(first at index \(3, 7, 0\)\)"):
        train(make_cfg("model=linear"))


def test_finished_run_dir_is_not_overwritten(make_cfg, tmp_path: Path) -> None:
    train(make_cfg("model=naive"))
    before = (tmp_path / "metrics.json").read_text()
    with pytest.raises(ConfigError, match="already holds a run .status: finished"):
        train(make_cfg("model=linear"))
    assert (tmp_path / "metrics.json").read_text() == before


def test_failed_run_dir_may_be_reused(make_cfg, tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        train(make_cfg("model.net=transformer"))
    train(make_cfg("model=naive"))
    assert read_status(tmp_path) == "finished"


def test_atomic_json_keeps_old_file_on_failure(tmp_path: Path) -> None:
    path = atomic_write_json(tmp_path / "m.json", {"a": 1})
    with pytest.raises(TypeError):
        atomic_write_json(path, {"a": object()})
    assert json.loads(path.read_text()) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["m.json"]


def test_resume_from_missing_checkpoint(make_cfg, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="resume=.*no checkpoint there"):
        train(make_cfg(f"resume={tmp_path / 'nowhere'}"))

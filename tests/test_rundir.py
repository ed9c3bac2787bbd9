"""Run folders are never stuck and never half-written; resume checks what it loads."""

from __future__ import annotations

import csv
import os
import pickle
import resource
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import torch
from conftest import compose_cfg, script_command, script_env

from seqforecast.callbacks import AtomicCheckpointIO, TrainingInterrupted
from seqforecast.errors import ConfigError, InputError, OutputError
from seqforecast.outputs import RunLock, atomic_write_text, read_status
from seqforecast.train import train

RUN = ["model=linear", "trainer.max_epochs=2"]


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished ``RUN`` folder, trained once; tests change copies of it."""
    out = tmp_path_factory.mktemp("finished")
    train(compose_cfg(out, *RUN))
    return out


def test_a_live_runs_folder_is_refused_without_suggesting_resume(
    make_cfg, tmp_path, finished_run: Path
) -> None:
    shutil.copytree(finished_run, tmp_path, dirs_exist_ok=True)  # a run with checkpoints ...
    lock = RunLock(tmp_path)  # ... that another live process holds again
    assert lock.acquire()
    atomic_write_text(tmp_path / "status", "running\n")
    try:
        for extra in ((), (f"resume={tmp_path}",)):
            with pytest.raises(ConfigError, match=r"in use by a live run \(pid \d+ on host") as err:
                train(make_cfg(*RUN, *extra))
            assert "resume=" not in str(err.value)
    finally:
        lock.release()
    assert read_status(tmp_path) == "running"


def test_the_run_lock_names_its_holder_and_stays_in_the_folder(tmp_path: Path) -> None:
    first, second = RunLock(tmp_path / "run"), RunLock(tmp_path / "run")  # one open file each
    assert first.acquire() and not second.acquire()
    me = (os.getpid(), socket.gethostname())
    assert first.path.read_text() == f"{me[0]} {me[1]}\n"
    assert second.holder() == f"pid {me[0]} on host {me[1]}"
    first.release()
    assert first.path.is_file() and second.acquire()  # kept on release: the folder's record
    second.release()


@pytest.mark.slow
def test_a_lock_held_by_another_process_is_refused_and_freed_when_it_dies(tmp_path: Path) -> None:
    code = (
        "import time; from seqforecast.outputs import RunLock\n"
        f"lock = RunLock({str(tmp_path)!r}); print(lock.acquire(), flush=True); time.sleep(60)"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env=script_env()
    )
    try:
        assert proc.stdout.readline() == "True\n"
        lock = RunLock(tmp_path)
        assert not lock.acquire()
        assert lock.holder() == f"pid {proc.pid} on host {socket.gethostname()}"
    finally:
        proc.kill()
        proc.wait()
    assert lock.acquire()  # the kernel dropped the dead holder's lock: nothing stale to clear
    lock.release()


def test_a_stale_running_folder_without_checkpoint_is_taken_over(make_cfg, tmp_path, caplog):
    atomic_write_text(tmp_path / "status", "running\n")  # killed before its first checkpoint
    metrics = train(make_cfg(*RUN))
    assert read_status(tmp_path) == "finished" and metrics["epochs"] == 2
    assert "takes the folder over" in caplog.text


def test_a_stale_running_folder_with_checkpoints_is_resumed_not_overwritten(make_cfg, tmp_path):
    train(make_cfg(*RUN))
    atomic_write_text(tmp_path / "status", "running\n")  # as if killed after a checkpoint
    before = (tmp_path / "metrics.json").read_text()
    with pytest.raises(ConfigError, match=r"running, but its process is gone.*resume="):
        train(make_cfg(*RUN))
    assert (tmp_path / "metrics.json").read_text() == before
    train(make_cfg(*RUN, f"resume={tmp_path}"))
    assert read_status(tmp_path) == "finished"


def _bad_checkpoints(good: Path) -> dict[str, bytes]:
    data = good.read_bytes()
    return {
        "empty": b"",
        "truncated": data[: len(data) // 2],
        "text": b"epoch,loss\n1,0.5\n",
        "pickled": pickle.dumps(os.system),
        "foreign": _saved({"state_dict": {}, "hyper_parameters": {}}),
    }


def _saved(obj) -> bytes:
    import io

    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


@pytest.mark.parametrize("kind", ["empty", "truncated", "text", "pickled", "foreign"])
def test_a_bad_last_checkpoint_is_refused_in_one_line_and_offers_a_good_one(
    make_cfg, tmp_path, finished_run: Path, kind: str
) -> None:
    shutil.copytree(finished_run, tmp_path, dirs_exist_ok=True)
    last = tmp_path / "checkpoints" / "last.ckpt"
    last.write_bytes(_bad_checkpoints(tmp_path / "checkpoints" / "best.ckpt")[kind])
    files = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file() and p.name != ".lock"}
    with pytest.raises(InputError) as err:
        train(make_cfg(*RUN, f"resume={tmp_path}"))
    message = str(err.value)
    assert "\n" not in message and str(last) in message, message
    assert "weights_only=False" not in message
    assert f"resume={tmp_path / 'checkpoints' / 'best.ckpt'}" in message  # the good one offered
    # The run folder is untouched: status finished, every file as it was.
    assert read_status(tmp_path) == "finished"
    for path, content in files.items():
        assert path.read_bytes() == content, path


def test_resume_of_a_checkpoint_outside_a_run_folder_is_refused(
    make_cfg, tmp_path, finished_run: Path
) -> None:
    stray = tmp_path / "elsewhere" / "model.ckpt"
    stray.parent.mkdir()
    shutil.copy(finished_run / "checkpoints" / "best.ckpt", stray)
    with pytest.raises(ConfigError, match="not a checkpoint of a run folder"):
        train(make_cfg(*RUN, f"output_dir={tmp_path / 'fresh'}", f"resume={stray}"))
    assert sorted(p.name for p in stray.parent.iterdir()) == ["model.ckpt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["elsewhere", "fresh"]


def test_checkpoints_are_written_beside_their_target_with_the_umask(tmp_path, monkeypatch) -> None:
    elsewhere = tmp_path / "tmp"
    elsewhere.mkdir()
    monkeypatch.setenv("TMPDIR", str(elsewhere))
    old = os.umask(0o022)
    try:
        AtomicCheckpointIO().save_checkpoint({"a": torch.ones(3)}, tmp_path / "c" / "x.ckpt")
    finally:
        os.umask(old)
    assert list(elsewhere.iterdir()) == []
    assert [p.name for p in (tmp_path / "c").iterdir()] == ["x.ckpt"]
    assert stat.S_IMODE((tmp_path / "c" / "x.ckpt").stat().st_mode) == 0o644
    assert torch.load(tmp_path / "c" / "x.ckpt", weights_only=True)["a"].sum() == 3


def test_a_failed_checkpoint_write_keeps_the_previous_one(tmp_path, monkeypatch) -> None:
    io_ = AtomicCheckpointIO()
    target = tmp_path / "last.ckpt"
    io_.save_checkpoint({"epoch": 1}, target)
    before = target.read_bytes()

    def fail(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", fail)
    with pytest.raises(OSError, match="No space left"):
        io_.save_checkpoint({"epoch": 2}, target)
    assert target.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]


def test_an_unwritable_output_dir_is_one_line(make_cfg, tmp_path) -> None:
    with pytest.raises(OutputError, match=r"^/proc/x.*(No such file|Permission).*output_dir"):
        train(make_cfg(*RUN, "output_dir=/proc/x/run"))


@pytest.mark.slow
def test_a_file_size_limit_while_checkpointing_is_one_line_exit_2(tmp_path: Path) -> None:
    def limit() -> None:  # small files fit; a checkpoint does not
        resource.setrlimit(resource.RLIMIT_FSIZE, (8192, 8192))

    run = tmp_path / "run"
    proc = subprocess.run(
        script_command(
            "train.py",
            "model=deep_rnn_dense",
            "data.n_series=96",
            "data.split=[64,16,16]",
            "trainer.max_epochs=1",
            "trainer.accelerator=cpu",
            f"hydra.run.dir={run}",
        ),
        cwd=tmp_path,
        env=script_env(),
        capture_output=True,
        text=True,
        timeout=300,
        preexec_fn=limit,
    )
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "File too large" in lines[0], proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    assert read_status(run).startswith("failed: OutputError")
    assert not (run / "metrics.json").exists()


def test_a_failed_runs_checkpoints_are_never_mixed_with_a_new_run(
    make_cfg, tmp_path, finished_run: Path
) -> None:
    shutil.copytree(finished_run, tmp_path, dirs_exist_ok=True)
    atomic_write_text(tmp_path / "status", "failed: NonFiniteLossError: ...\n")
    with pytest.raises(ConfigError, match="holds the checkpoints of a failed run"):
        train(make_cfg(*RUN))
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == [
        "best.ckpt",
        "last.ckpt",
    ]


WRITER = """
import sys, torch
from seqforecast.callbacks import AtomicCheckpointIO
AtomicCheckpointIO().save_checkpoint({"w": torch.ones(16, 1024, 1024)}, sys.argv[1])
"""


@pytest.mark.slow
@pytest.mark.skipif(not Path("/dev/shm").is_dir(), reason="needs a tmpfs at /dev/shm")
def test_sigkill_while_a_checkpoint_is_written_leaves_the_old_one(tmp_path: Path) -> None:
    # TMPDIR on another filesystem (tmpfs): nothing may be staged there and copied.
    staging = Path(tempfile.mkdtemp(dir="/dev/shm"))
    target = tmp_path / "checkpoints" / "last.ckpt"
    AtomicCheckpointIO().save_checkpoint({"w": torch.zeros(3)}, target)
    env = {**script_env(), "TMPDIR": str(staging)}
    try:
        proc = subprocess.Popen([sys.executable, "-c", WRITER, str(target)], env=env)
        deadline = time.monotonic() + 60
        while not list(target.parent.glob(".last.ckpt.*.tmp")):  # the write has begun
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.005)
        proc.kill()
        proc.wait(timeout=30)
        assert list(staging.iterdir()) == []
    finally:
        shutil.rmtree(staging)
    assert torch.load(target, weights_only=True)["w"].tolist() == [0.0, 0.0, 0.0]


def test_run_files_get_the_users_umask(make_cfg, tmp_path) -> None:
    old = os.umask(0o022)
    try:
        train(make_cfg(*RUN))
    finally:
        os.umask(old)
    for name in ("status", "config.yaml", "metrics.json", "checkpoints/best.ckpt"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o644, name


# 4 batches an epoch: SIGTERM in epoch 1, after its third batch (global step 6).
AUTO = [*RUN, "trainer.max_epochs=3", "deterministic=true", "resume=auto"]
PREEMPTED = ["+callbacks.preempt._target_=conftest.SignalAt", "+callbacks.preempt.step=6"]


def _csv(path: Path) -> list[dict[str, str]]:
    with path.open() as f:
        return list(csv.DictReader(f))


def test_resume_auto_continues_an_interrupted_run_and_keeps_its_log(make_cfg, tmp_path) -> None:
    want = train(make_cfg(*AUTO, f"output_dir={tmp_path / 'ref'}"))
    run = tmp_path / "run"
    with pytest.raises(TrainingInterrupted):
        train(make_cfg(*AUTO, *PREEMPTED, f"output_dir={run}"))
    assert read_status(run).startswith("interrupted")
    assert [r["epoch"] for r in _csv(run / "logs" / "metrics.csv")] == ["0", "0"]
    got = train(make_cfg(*AUTO, *PREEMPTED, f"output_dir={run}"))  # the same command again
    assert got["resumed_from"] == str(run / "checkpoints" / "last.ckpt")
    for key in ("val/mse", "val/mse_last", "test/mse", "epochs"):
        assert got[key] == want[key], key
    # Lightning's CSV logger deletes metrics.csv on resume; the epochs before are kept, and
    # the whole log equals the uninterrupted run's (deterministic, same data order).
    assert _csv(run / "logs" / "metrics.csv") == _csv(tmp_path / "ref" / "logs" / "metrics.csv")
    assert sorted(p.name for p in (run / "logs").iterdir()) == ["hparams.yaml", "metrics.csv"]


def test_resume_auto_continues_a_running_folder_whose_process_is_gone(make_cfg, tmp_path):
    train(make_cfg(*AUTO))
    atomic_write_text(tmp_path / "status", "running\n")  # killed after its last checkpoint
    assert train(make_cfg(*AUTO))["resumed_from"] == str(tmp_path / "checkpoints" / "last.ckpt")
    assert read_status(tmp_path) == "finished"


def test_resume_auto_reuses_a_finished_run_without_training(make_cfg, tmp_path, monkeypatch):
    run = tmp_path / "run"
    first = train(make_cfg(*AUTO, f"output_dir={run}"))
    files = {p: p.read_bytes() for p in run.rglob("*") if p.is_file() and p.name != ".lock"}

    def no_training(cfg):
        raise AssertionError("a finished run was trained again")

    monkeypatch.setattr("seqforecast.train.build_trainer", no_training)
    assert train(make_cfg(*AUTO, f"output_dir={run}")) == first
    # Where the run lives does not count: the folder moved holds the same run.
    shutil.copytree(run, tmp_path / "moved")
    assert train(make_cfg(*AUTO, f"output_dir={tmp_path / 'moved'}")) == first
    for path, content in files.items():
        assert path.read_bytes() == content, path


@pytest.mark.parametrize("status", ["finished", "interrupted: SIGTERM received"])
def test_resume_auto_refuses_a_run_with_other_settings(make_cfg, tmp_path, status) -> None:
    train(make_cfg(*AUTO))
    atomic_write_text(tmp_path / "status", status + "\n")
    files = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file() and p.name != ".lock"}
    state = status.split(":")[0]
    with pytest.raises(ConfigError, match=f"holds a {state} run with other settings") as err:
        train(make_cfg(*AUTO, "model.lr=0.01"))
    assert "\n" not in str(err.value)
    for path, content in files.items():
        assert path.read_bytes() == content, path


def test_a_log_merge_repeated_after_a_kill_keeps_each_row_once(tmp_path) -> None:
    from lightning.pytorch.loggers import CSVLogger

    from seqforecast.resume import SET_ASIDE, keep_log_history

    logs = tmp_path / "logs"
    logs.mkdir()
    ckpt = tmp_path / "last.ckpt"
    torch.save({"global_step": 8, "hyper_parameters": {}, "state_dict": {}}, ckpt)
    rows = "epoch,step,val/mse\n0,3,0.5\n1,7,0.4\n2,11,0.3\n"
    (logs / "metrics.csv").write_text(rows)
    (logs / SET_ASIDE).write_text("epoch,step,val/mse\n0,3,0.5\n")  # killed before its removal
    with keep_log_history(CSVLogger(tmp_path, name="logs", version=""), ckpt):
        assert (logs / SET_ASIDE).read_text() == "epoch,step,val/mse\n0,3,0.5\n1,7,0.4\n"
        (logs / "metrics.csv").write_text("epoch,step,val/mse\n2,11,0.25\n")  # the resumed run
    assert (logs / "metrics.csv").read_text() == "epoch,step,val/mse\n0,3,0.5\n1,7,0.4\n2,11,0.25\n"
    assert not (logs / SET_ASIDE).exists()

"""Run folders are never stuck and never half-written; resume checks what it loads."""

from __future__ import annotations

import os
import pickle
import resource
import shutil
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import torch
from conftest import script_command, script_env

from seqforecast.callbacks import AtomicCheckpointIO
from seqforecast.errors import ConfigError, InputError, OutputError
from seqforecast.outputs import RunLock, atomic_write_text, read_status
from seqforecast.train import train

RUN = ["model=linear", "trainer.max_epochs=2"]


def test_a_live_runs_folder_is_refused_without_suggesting_resume(make_cfg, tmp_path) -> None:
    train(make_cfg(*RUN))  # a run with checkpoints ...
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
    make_cfg, tmp_path, kind: str
) -> None:
    train(make_cfg(*RUN))
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


def test_resume_of_a_checkpoint_outside_a_run_folder_is_refused(make_cfg, tmp_path) -> None:
    train(make_cfg(*RUN, f"output_dir={tmp_path / 'run'}"))
    stray = tmp_path / "elsewhere" / "model.ckpt"
    stray.parent.mkdir()
    shutil.copy(tmp_path / "run" / "checkpoints" / "best.ckpt", stray)
    with pytest.raises(ConfigError, match="not a checkpoint of a run folder"):
        train(make_cfg(*RUN, f"output_dir={tmp_path / 'fresh'}", f"resume={stray}"))
    assert sorted(p.name for p in stray.parent.iterdir()) == ["model.ckpt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["elsewhere", "fresh", "run"]


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


def test_a_failed_runs_checkpoints_are_never_mixed_with_a_new_run(make_cfg, tmp_path) -> None:
    train(make_cfg(*RUN))
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

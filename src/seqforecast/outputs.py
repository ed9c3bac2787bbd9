"""Run-folder files: atomic writes, the run's ``status`` line and the lock of a live run.

Every file a run writes goes through :func:`atomic_open` (checkpoints too, through
:class:`seqforecast.callbacks.AtomicCheckpointIO`): a temporary file beside the target, fsync,
rename. A process killed at any moment leaves the previous complete file or the new one, never
a truncated one, whatever ``TMPDIR`` is. Files get the user's umask, as ``open()`` would give them.

A run holds an exclusive lock on ``<run>/.lock`` while it works (:class:`RunLock`);
the kernel drops it when the process ends, however it ends. So a ``status: running`` whose
lock is free belongs to a process that is gone (stale), and one whose lock is held belongs
to a live run.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from filelock import FileLock, Timeout

from seqforecast.errors import ConfigError, OutputError

STATUS = "status"
LOCK = ".lock"
STAGED_SUFFIX = ".tmp"  # atomic_open's temporary file: .<name>.<random>.tmp beside <name>


def output_error(err: OSError, out: str | Path, key: str = "output_dir") -> OutputError:
    """One line for a failed file operation: the path, the system's reason, the setting."""
    where = err.filename or out
    return OutputError(f"{where}: {err.strerror or err} ({key} {out}); nothing more written")


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextmanager
def atomic_open(path: str | Path) -> Iterator[IO[bytes]]:
    """A binary file that replaces ``path`` only once it is complete (temporary file + rename).

    The temporary file lies beside ``path`` (same filesystem, so the rename is atomic); it is
    flushed and fsynced before the rename, and the folder after it. A reader sees either the
    old file or the whole new one; on an error the temporary file is removed and ``path`` is
    left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=STAGED_SUFFIX)
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp's 0600 would hide results from a team
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def staged_files(path: str | Path) -> list[Path]:
    """The temporary files :func:`atomic_open` left beside ``path`` (newest first).

    One is left only when a process was killed between creating it and its rename: it may
    be cut short, or complete (killed after the last byte, before the rename).
    """
    path = Path(path)
    return newest_first(path.parent.glob(f".{path.name}.*{STAGED_SUFFIX}"))


def newest_first(paths: Iterable[Path]) -> list[Path]:
    """``paths`` by modification time, newest first; those gone meanwhile left out."""
    found = []
    for path in paths:
        with contextlib.suppress(FileNotFoundError):  # renamed or removed meanwhile by a writer
            found.append((path.stat().st_mtime, path))
    return [path for _, path in sorted(found, reverse=True)]


def finish_staged(staged: Path, path: str | Path) -> Path:
    """Do the rename a killed :func:`atomic_open` did not reach: ``staged`` becomes ``path``.

    Only for a staged file already checked to be complete; the caller holds the run lock.
    """
    os.replace(staged, path)
    _fsync_dir(Path(path).parent)
    return Path(path)


def _fsync_dir(folder: Path) -> None:
    """Make a rename in ``folder`` durable (best effort: not every filesystem allows it)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):
            os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    with atomic_open(path) as f:
        f.write(data)
    return Path(path)


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode())


def atomic_write_json(path: str | Path, data: dict[str, Any]) -> Path:
    return atomic_write_text(path, json.dumps(data, indent=2) + "\n")


def read_status(run_dir: str | Path) -> str | None:
    """The run's status line (``running``, ``finished``, ``failed: ...``, ``interrupted: ...``)."""
    path = Path(run_dir) / STATUS
    return path.read_text().strip() if path.exists() else None


def write_status(run_dir: str | Path, status: str) -> None:
    atomic_write_text(Path(run_dir) / STATUS, status.replace("\n", " ") + "\n")


class RunLock:
    """The ``filelock`` a live run holds on ``<run>/.lock`` (its pid and host written in it)."""

    def __init__(self, run_dir: str | Path) -> None:
        self.path = Path(run_dir) / LOCK
        # Kept on release (the file is the folder's record), so never a soft-lock fallback.
        self._lock = FileLock(
            self.path, blocking=False, preserve_lock_file=True, on_acquired=_write_holder
        )

    def acquire(self) -> bool:
        """Take the lock; False if another live process holds it."""
        with contextlib.suppress(Timeout):
            self._lock.acquire()
        return self._lock.is_locked

    def holder(self) -> str:
        """Who holds the lock, as its file says (``pid N on host H``)."""
        try:
            pid, host = self.path.read_text().split()
        except (OSError, ValueError):
            return "another process"
        return f"pid {pid} on host {host}"

    def release(self) -> None:
        self._lock.release()


def _write_holder(fd: int) -> None:
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()} {socket.gethostname()}\n".encode(), 0)


def has_checkpoint(run_dir: str | Path) -> bool:
    return any((Path(run_dir) / "checkpoints").glob("*.ckpt"))


def claim_run_dir(run_dir: str | Path, resuming: bool) -> RunLock:
    """Lock ``run_dir`` for this run, or refuse it in one line; returns the held lock.

    A folder a live run holds is refused, for a new run and for ``resume=`` alike. A folder
    whose last run failed may be reused if it holds no checkpoint (a new run never mixes its
    files with another model's). A ``running`` folder whose process is gone (stale):
    ``resume=`` continues it; a new run takes it over only if it holds no checkpoint (it
    stopped before its first one), otherwise it must be resumed. A finished or interrupted
    folder is never overwritten by a new run.
    """
    lock = RunLock(run_dir)
    if not lock.acquire():
        raise ConfigError(
            f"output_dir {run_dir} is in use by a live run ({lock.holder()}); wait for it to "
            "end or stop it, or choose another hydra.run.dir"
        )
    status = read_status(run_dir)
    if resuming:
        return lock
    reusable = status is None or status == "running" or status.startswith("failed")
    if reusable and not has_checkpoint(run_dir):
        return lock  # nothing to lose (a stale one: the caller says it takes it over)
    lock.release()
    if status is None or status.startswith("failed"):
        whose = "a failed run" if status else "another run"
        raise ConfigError(
            f"output_dir {run_dir} holds the checkpoints of {whose}; a new run there would mix "
            f"its files with them: choose another hydra.run.dir (or remove "
            f"{Path(run_dir) / 'checkpoints'})"
        )
    state = "running, but its process is gone" if status == "running" else status.split(":")[0]
    raise ConfigError(
        f"output_dir {run_dir} already holds a run (status: {state}); choose another "
        f"hydra.run.dir, or continue it with resume={run_dir}"
    )

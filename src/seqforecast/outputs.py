"""Run-folder files: atomic writes and the run's ``status`` line."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from seqforecast.errors import ConfigError

STATUS = "status"


@contextmanager
def atomic_open(path: str | Path) -> Iterator[IO[bytes]]:
    """A binary file that replaces ``path`` only once it is complete (temporary file + rename).

    A reader sees either the old file or the whole new one, never half a file; on an
    error the temporary file is removed and ``path`` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


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


def claim_run_dir(run_dir: str | Path, resuming: bool) -> None:
    """Refuse to start a new run over a folder that holds a run's work, unless resuming.

    A folder whose last run failed before finishing may be reused; a finished,
    interrupted or running one may not (its checkpoints and metrics would be lost).
    """
    status = read_status(run_dir)
    if resuming or status is None or status.startswith("failed"):
        return
    raise ConfigError(
        f"output_dir {run_dir} already holds a run (status: {status.split(':')[0]}); "
        f"choose another hydra.run.dir, or continue it with resume={run_dir}"
    )

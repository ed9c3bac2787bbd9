"""A run's estimated peak memory (``seqforecast.memory.estimate_run``) against its measured
peak resident memory, for the table in docs/configuration.md.

    python benchmarks/bench_memory.py                  # every case below
    python benchmarks/bench_memory.py --only chapter   # one case
    python benchmarks/bench_memory.py --quick          # a smoke run: the chapter on tiny data

Each case is one epoch of ``scripts/train.py`` in a child process, as a user runs it; the
estimate is the one ``train`` logs before it makes the data (``memory: estimated peak``),
the measured peak is the child's maximum resident set size (``getrusage`` of its children
in a parent of its own, so each case's peak is its own; Linux reports kB).
The panel is the example panel (``python -m seqforecast.data.example``, 50 series x 1000
rows), written to ``--work``. The table is printed and written to ``<work>/bench_memory.md``.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CASES = {
    "chapter": ["model=seq2seq"],
    "panel": [
        "model=seq2seq",
        "data=csv",
        "data.path={work}/panel.csv",
        "data.id=series",
        "data.time=date",
    ],
    "long window": ["model=seq2seq", "n_steps=5000", "data.n_series=200", "data.split=[140,40,20]"],
    "long window, lstm": [
        "model=lstm",
        "n_steps=5000",
        "data.n_series=200",
        "data.split=[140,40,20]",
    ],
    "long window, wavenet": [
        "model=wavenet",
        "n_steps=5000",
        "data.n_series=200",
        "data.split=[140,40,20]",
    ],
    "big data": ["model=seq2seq", "n_steps=1000", "trainer.limit_train_batches=20"],
}
# Runs the command given, then prints its maximum resident set size in kB (last line).
MEASURE = (
    "import resource, subprocess, sys; rc = subprocess.run(sys.argv[1:]).returncode; "
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); sys.exit(rc)"
)
# --quick: the chapter case on 100 series, so that the script is exercised in seconds.
QUICK = ["data.n_series=100", "data.split=[70,20,10]"]
ESTIMATE = re.compile(r"memory: estimated peak (\d+) MB")


def run(name: str, work: Path, runs: Path, extra: list[str]) -> tuple[str, int, int]:
    """``(command, estimated MB, measured MB)`` of one case, its run folder under ``runs``."""
    args = [a.format(work=work) for a in CASES[name]] + extra
    folder = runs / re.sub(r"\W+", "_", name)
    args += ["trainer.max_epochs=1", f"hydra.run.dir={folder}"]
    train = [sys.executable, str(ROOT / "scripts" / "train.py"), *args]
    done = subprocess.run(
        [sys.executable, "-c", MEASURE, *train],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
        check=False,
    )
    peak = int(done.stdout.strip().splitlines()[-1]) if done.returncode == 0 else 0
    found = ESTIMATE.search(done.stdout + done.stderr)
    if done.returncode or not found:
        sys.exit(f"{name}: exit {done.returncode}\n{done.stderr[-2000:]}")
    command = "python scripts/train.py " + " ".join(args[:-1])
    return command, int(found.group(1)), peak * 1024 // 10**6  # kB (KiB) -> MB


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("bench_memory"))
    parser.add_argument("--only", choices=list(CASES), action="append")
    parser.add_argument("--quick", action="store_true", help="the chapter on 100 series only")
    args = parser.parse_args()
    names = ["chapter"] if args.quick else args.only or list(CASES)
    args.work.mkdir(parents=True, exist_ok=True)
    runs = Path(tempfile.mkdtemp(prefix="runs-", dir=args.work))  # fresh run folders each time
    if "panel" in names and not (args.work / "panel.csv").exists():
        subprocess.run(
            [
                sys.executable,
                "-m",
                "seqforecast.data.example",
                str(args.work / "panel.csv"),
                "--series",
                "50",
            ],
            check=True,
            env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
        )
    rows = [
        "| run | estimated peak | measured peak (max RSS) | estimate / measured |",
        "| --- | --- | --- | --- |",
    ]
    for name in names:
        command, estimate, peak = run(name, args.work, runs, QUICK if args.quick else [])
        rows.append(f"| {name} | {estimate} MB | {peak} MB | {estimate / peak:.2f} |")
        print(f"{name}: {command}", flush=True)
    table = "\n".join(rows)
    print(table)
    (args.work / "bench_memory.md").write_text(table + "\n")


if __name__ == "__main__":
    main()

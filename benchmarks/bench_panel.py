"""Peak memory and seconds per epoch of a panel of many series, against the sine data.

    python benchmarks/bench_panel.py --quick                 # 50 series x 2,000 rows
    python benchmarks/bench_panel.py                         # 1,000 series x 10,000 rows
    python benchmarks/bench_panel.py --quick --ddp           # also each rank's share (ddp_cpu)
    python benchmarks/bench_panel.py --profile               # also where the set-up goes

Writes (once; reused from ``--work``) a long CSV ``series,t,value`` of ``--series`` series of
``--rows`` rows: integer ids and an integer time column (small to write, fast to parse, no
date parsing), values from the chapter's two-sine formula (``two_sine_series``, seeded per
block of series). Then trains ``model=seq2seq`` (``n_steps=50``) on it for one epoch with
``scripts/train.py``, as a user would, in a child process, so its peak RSS is that run's.

The sine reference trains the same model with the same ``--batch-size`` for the same number
of batches (``data.n_series`` gives up to 64 batches of training windows; epochs repeat
them and ``trainer.max_steps`` stops at the panel's count). A callback in both runs
(:class:`Clock`) times the training batches only: from each epoch's start to its last
training batch's end (the loader's gather, forward, backward and per-batch hooks), not the
validation at the epoch's end. Set-up is from the callback's creation (after the config is
composed) to the ``setup`` hook, which Lightning calls after the DataModule's ``setup``:
reading, validating, scaling and indexing the table. The ratio is the panel's training
seconds over (the sine data's seconds per batch x the panel's batches). Both runs keep
the default settings otherwise, ``levels=[80, 95]`` included: the peak RSS counts the
interval calibration on the val windows after the test stage.

``--ddp`` trains the ``--quick`` panel under ``trainer=ddp_cpu`` (two processes) and checks
each rank's training batches against ``ceil(windows / world_size / batch_size)``.
``--profile`` times the set-up's steps in a child of their own (pandas' read, the per-series
reading and validation, the scaling and indexing) with the peak RSS after each.
The table is printed and written to ``<work>/bench_panel.md``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
N_STEPS, HORIZON = 50, 10  # model=seq2seq
SINE_BATCHES = 64  # training batches of sine windows per epoch in the reference
GB = 1e9


class Clock(L.Callback):
    """Writes the set-up seconds, the training-batch seconds and counts, the splits' windows
    and this process's peak RSS to ``path`` (``RANK`` replaced by the global rank)."""

    def __init__(self, path: str) -> None:
        self.path, self.created = path, time.perf_counter()
        self.setup_s, self.train_s, self.batches, self.start, self.last = 0.0, 0.0, 0, None, None
        self.rss_setup_mb = 0.0

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if stage == "fit":
            self.setup_s = time.perf_counter() - self.created
            self.rss_setup_mb = peak_rss_mb()

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._close()
        self.start = time.perf_counter()

    def on_train_batch_end(self, trainer: L.Trainer, *args: Any) -> None:
        self.last = time.perf_counter()
        self.batches += 1

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._close()

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._close()
        dm = trainer.datamodule
        record = {
            "rank": trainer.global_rank,
            "world_size": trainer.world_size,
            "setup_s": self.setup_s,
            "train_s": self.train_s,
            "batches": self.batches,
            "epochs": trainer.current_epoch,
            "train_batches_per_epoch": int(trainer.num_training_batches),
            "windows": {k: len(v) for k, v in dm.splits.items()},
            "rows": None if dm.bounds is None else dm.bounds[-1],
            "rss_setup_mb": self.rss_setup_mb,
            "rss_fit_mb": peak_rss_mb(),
        }
        Path(self.path.replace("RANK", str(trainer.global_rank))).write_text(json.dumps(record))

    def _close(self) -> None:
        if self.start is not None and self.last is not None and self.last > self.start:
            self.train_s += self.last - self.start
        self.start = None


def peak_rss_mb() -> float:
    """This process's peak resident set so far, in MB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e6


def write_panel(path: Path, series: int, rows: int, seed: int = 42) -> Path:
    """The long table ``series,t,value`` (series after series), written once."""
    import pandas as pd

    from seqforecast.data.generate import two_sine_series

    if path.exists():
        return path
    tmp = path.with_suffix(".tmp")
    block = max(1, 1_000_000 // rows)  # series per block: about a million rows
    with tmp.open("w") as f:
        for lo in range(0, series, block):
            n = min(block, series - lo)
            value = two_sine_series(n, rows, seed=seed + lo)[..., 0]  # [n, rows]
            frame = pd.DataFrame(
                {
                    "series": np.repeat(np.arange(lo, lo + n), rows),
                    "t": np.tile(np.arange(rows), n),
                    "value": value.ravel(),
                }
            )
            frame.to_csv(f, header=lo == 0, index=False, float_format="%.5f")
    tmp.replace(path)
    return path


def run_child(cmd: list[str], log: Path, env: dict[str, str] | None = None) -> tuple[float, float]:
    """Run ``cmd`` (output to ``log``); its wall seconds and peak RSS in MB (its own, by
    ``wait4``; with child processes, the largest of them)."""
    start = time.perf_counter()
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"error: {' '.join(cmd[:3])} ... failed; see {log}")
    return wall, usage.ru_maxrss * 1024 / 1e6


def train_run(runs: Path, name: str, overrides: list[str]) -> dict[str, Any]:
    """``scripts/train.py model=seq2seq`` with ``overrides`` and the :class:`Clock`, in a child
    (run folder ``runs/name``)."""
    out = runs / name
    clock = out / "clock-RANK.json"
    cmd = [
        sys.executable,
        str(ROOT / "scripts" / "train.py"),
        "model=seq2seq",
        f"n_steps={N_STEPS}",
        "trainer.accelerator=cpu",
        f"hydra.run.dir={out}",
        "+callbacks.bench_clock._target_=bench_panel.Clock",
        f"+callbacks.bench_clock.path={clock}",
        *overrides,
    ]
    path = [str(ROOT / "benchmarks"), os.environ.get("PYTHONPATH", "")]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in path if p)}
    wall, rss = run_child(cmd, runs / f"{name}.log", env)
    ranks = sorted(out.glob("clock-*.json"))
    records = [json.loads(p.read_text()) for p in ranks]
    metrics = json.loads((out / "metrics.json").read_text())
    return {**records[0], "ranks": records, "wall_s": wall, "peak_rss_mb": rss, "metrics": metrics}


def materialised_bytes(windows: dict[str, int]) -> int:
    """The old code's seq2seq windows: inputs ``[N, n]`` and targets ``[N, n, k]``, float32."""
    return sum(windows.values()) * (N_STEPS + N_STEPS * HORIZON) * 4


def profile_setup(path: str) -> None:
    """Time the set-up's steps in this process and print them as JSON (``--profile``)."""
    from seqforecast.data.files import FileDataModule
    from seqforecast.data.panel import load_panel
    from seqforecast.data.table import read_frame

    steps: dict[str, Any] = {}
    start = time.perf_counter()
    frame = read_frame(path)
    steps["pandas read_csv"] = (time.perf_counter() - start, peak_rss_mb())
    start = time.perf_counter()
    panel = load_panel(path, ["value"], "t", None, ["series"], frame=frame)
    steps["load_panel (group, validate per series)"] = (time.perf_counter() - start, peak_rss_mb())
    del frame
    dm = FileDataModule(path, time="t", id="series", n_steps=N_STEPS, horizon=HORIZON,
                        target_kind="seq2seq")  # fmt: skip
    dm.panel = panel
    start = time.perf_counter()
    dm.setup()
    steps["split, scale, index (setup)"] = (time.perf_counter() - start, peak_rss_mb())
    print(json.dumps(steps))


def profile_run(runs: Path, csv: Path) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--profile-child", str(csv)]
    log = runs / "profile.log"
    wall, rss = run_child(cmd, log)
    steps = json.loads(log.read_text().strip().splitlines()[-1])
    return {"steps": steps, "wall_s": wall, "peak_rss_mb": rss}


def table(args: argparse.Namespace, panel: dict[str, Any], sine: dict[str, Any]) -> str:
    w = panel["windows"]
    per_batch = sine["train_s"] / sine["batches"]
    ratio = panel["train_s"] / (per_batch * panel["batches"])
    mat = materialised_bytes(w)
    rows = [
        ("data", f"{args.series} series x {args.rows} rows", f"{sine['sine_windows']} windows"),
        ("rows", f"{panel['rows']:,}", ""),
        ("windows train / val / test", f"{w['train']:,} / {w['val']:,} / {w['test']:,}",
         " / ".join(f"{sine['windows'][k]:,}" for k in ("train", "val", "test"))),
        ("batch size", str(args.batch_size), str(args.batch_size)),
        ("training batches", f"{panel['batches']:,} (1 epoch)",
         f"{sine['batches']:,} ({sine['epochs']} epochs)"),
        ("set-up s (read, validate, scale, index)", f"{panel['setup_s']:.1f}",
         f"{sine['setup_s']:.1f}"),
        ("training s (batches only)", f"{panel['train_s']:.1f}", f"{sine['train_s']:.1f}"),
        ("ms per batch", f"{panel['train_s'] / panel['batches'] * 1e3:.1f}",
         f"{per_batch * 1e3:.1f}"),
        ("run wall s (incl. evaluation)", f"{panel['wall_s']:.0f}", f"{sine['wall_s']:.0f}"),
        ("peak RSS MB (after set-up / whole run)",
         f"{panel['rss_setup_mb']:.0f} / {panel['peak_rss_mb']:.0f}",
         f"{sine['rss_setup_mb']:.0f} / {sine['peak_rss_mb']:.0f}"),
        ("s/epoch ratio (target <= 1.2)", f"{ratio:.2f}", "1"),
        ("old materialised seq2seq windows", f"{mat / GB:.1f} GB", ""),
    ]  # fmt: skip
    lines = ["| | panel | sine reference |", "|---|---|---|"]
    lines += [f"| {a} | {b} | {c} |" for a, b, c in rows]
    return "\n".join(lines)


def ddp_check(work: Path, runs: Path, batch_size: int) -> list[str]:
    """Each rank's training batches under ``trainer=ddp_cpu`` (the quick panel) against the
    expected share."""
    csv = write_panel(work / "panel-50x2000.csv", 50, 2000)
    run = train_run(runs, "panel-ddp", [*panel_overrides(csv, batch_size), "trainer=ddp_cpu"])
    lines = []
    for r in run["ranks"]:
        n, ws = r["windows"]["train"], r["world_size"]
        want = math.ceil(n / ws / batch_size)
        ok = "ok" if r["train_batches_per_epoch"] == want == r["batches"] else "MISMATCH"
        lines.append(
            f"ddp_cpu rank {r['rank']}/{ws}: {r['batches']} training batches run, "
            f"{r['train_batches_per_epoch']} in its loader; ceil({n} / {ws} / {batch_size}) = "
            f"{want}: {ok}"
        )
    return lines


def panel_overrides(csv: Path, batch_size: int) -> list[str]:
    return [
        "data=csv",
        f"data.path={csv}",
        "data.id=series",
        "data.time=t",
        f"data.batch_size={batch_size}",
        "trainer.max_epochs=1",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", type=int, default=1000)
    parser.add_argument("--rows", type=int, default=10000)
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--work", type=Path, default=None, help="cache folder (default: temp)")
    parser.add_argument("--quick", action="store_true", help="50 series x 2,000 rows")
    parser.add_argument("--ddp", action="store_true", help="also each rank's share (ddp_cpu)")
    parser.add_argument("--profile", action="store_true", help="also time the set-up's steps")
    parser.add_argument("--profile-child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.profile_child:
        return profile_setup(args.profile_child)
    if args.quick:
        args.series, args.rows = 50, 2000
    work = args.work or Path(tempfile.mkdtemp(prefix="bench_panel-"))
    runs = work / "runs" / time.strftime("%Y%m%d-%H%M%S")  # a fresh run folder per call
    runs.mkdir(parents=True)
    csv = write_panel(work / f"panel-{args.series}x{args.rows}.csv", args.series, args.rows)
    tag = f"{args.series}x{args.rows}-b{args.batch_size}"

    panel = train_run(runs, f"panel-{tag}", panel_overrides(csv, args.batch_size))
    batches = panel["batches"]
    n_train = min(panel["windows"]["train"], SINE_BATCHES * args.batch_size)
    per_epoch = math.ceil(n_train / args.batch_size)
    sine = train_run(
        runs,
        f"sine-{tag}",
        [
            f"data.n_series={n_train + 2 * args.batch_size}",
            f"data.split=[{n_train},{args.batch_size},{args.batch_size}]",
            f"data.batch_size={args.batch_size}",
            f"trainer.max_epochs={math.ceil(batches / per_epoch)}",
            f"trainer.max_steps={batches}",
        ],
    )
    sine["sine_windows"] = n_train
    text = table(args, panel, sine)
    if args.profile:
        prof = profile_run(runs, csv)
        text += "\n\nSet-up steps (one process: seconds, peak RSS MB after the step):\n"
        text += "\n".join(f"- {k}: {s:.1f} s, {m:.0f} MB" for k, (s, m) in prof["steps"].items())
    if args.ddp:
        text += "\n\n" + "\n".join(ddp_check(work, runs, args.batch_size))
    print(text)
    (work / "bench_panel.md").write_text(text + "\n")
    print(f"written: {work / 'bench_panel.md'}")


if __name__ == "__main__":
    main()

"""Where an epoch of ``train(cfg)`` goes, against the plain loop's epoch on the same net.

    python benchmarks/bench_epoch.py                         # deep_rnn_dense, 9 epochs
    python benchmarks/bench_epoch.py --model seq2seq --epochs 6
    python benchmarks/bench_epoch.py --quick                 # a smoke run: 96 series, 2 epochs
    python benchmarks/bench_epoch.py --tiny                  # a 58-row series: old vs new settings

It trains the model once with ``train(cfg)`` (the real config, as ``benchmarks/bench.py``
runs it) and once with the bench's plain loop on the fast net (``bench.plain_loop``),
in one process, and prints milliseconds per epoch (epochs after the first): for ours the
epoch, the time in ``training_step`` and ``validation_step``, in the train loader, in
checkpoint writes and in each callback hook; for the plain loop its training part and its
validation. The difference between an epoch and its steps is the framework's per-epoch work.

``--tiny`` measures the case where the per-epoch overhead dominates: a 58-row monthly series
(trend, season, noise; one training batch an epoch) trained ``--epochs`` epochs (200) with
``model=linear`` and ``model=gru``, ``horizon=6 n_steps=12``, once with ``last.ckpt`` written
after every epoch (the earlier default, ``callbacks.last_checkpoint.train_time_interval=null``)
and once with today's defaults, alternating for ``--repeats`` rounds; it prints the median
milliseconds per epoch (the first epoch not counted) and their ratio, per round and overall.

The timings wrap Lightning internals (its fetcher, hook dispatch and ``ModelCheckpoint``;
Lightning 2.6): a diagnostic, not part of the package.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import logging
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from itertools import pairwise
from pathlib import Path
from typing import Any

import bench  # the sibling script (this folder is on sys.path): configs, plain loop, epoch timer
import lightning as L
import numpy as np
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loops import fetchers
from lightning.pytorch.trainer import call

from seqforecast.module import ForecastModule
from seqforecast.train import instantiate, set_threads, train

TOTALS: dict[str, float] = defaultdict(float)
TIMING = [False]  # on from the second epoch to the end of fit


def timed(owner: Any, name: str, key: Callable[..., str]) -> None:
    """Replace ``owner.name`` by a wrapper adding its wall time to ``TOTALS[key(*args)]``."""
    inner = getattr(owner, name)

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return inner(*args, **kwargs)
        finally:
            if TIMING[0]:
                TOTALS[key(*args)] += time.perf_counter() - start

    setattr(owner, name, wrapper)


class Window(L.Callback):
    """Times from the start of the second epoch to the end of fit."""

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.current_epoch == 1:
            TOTALS.clear()
            TIMING[0] = True
            self.start = time.perf_counter()

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        TIMING[0] = False
        TOTALS["epoch (all of it)"] = time.perf_counter() - self.start


# --tiny: the earlier default (last.ckpt after every epoch) against today's.
TINY_SETTINGS = {"every epoch": ["callbacks.last_checkpoint.train_time_interval=null"], "now": []}


def tiny_series(path: Path, rows: int = 58) -> Path:
    """A monthly series: level 100, trend 1.5 a month, a yearly sine of amplitude 10, noise."""
    rng = np.random.default_rng(0)
    t = np.arange(rows)
    value = 100 + 1.5 * t + 10 * np.sin(2 * np.pi * t / 12) + rng.normal(0, 2, rows)
    dates = [f"{2020 + m // 12}-{m % 12 + 1:02d}-01" for m in t]
    lines = ["date,value", *(f"{d},{v:.6f}" for d, v in zip(dates, value, strict=True))]
    path.write_text("\n".join(lines) + "\n")
    return path


def tiny(epochs: int, repeats: int) -> None:
    """Median ms per epoch of ``train(cfg)`` on the tiny series, old and new settings side by
    side (alternating, so a machine whose speed drifts affects both alike)."""
    with tempfile.TemporaryDirectory() as work:
        csv = tiny_series(Path(work) / "tiny.csv")
        data = ["data=csv", f"data.path={csv}", "data.time=date", "data.split=[0.6,0.2,0.2]"]
        for model in ("linear", "gru"):
            seconds: dict[str, list[float]] = defaultdict(list)
            ratios = []
            for r in range(repeats):
                medians = {}
                for name, extra in TINY_SETTINGS.items():
                    out = Path(work) / f"{model}-{r}-{len(extra)}"
                    overrides = [f"model={model}", "horizon=6", "n_steps=12", *data, *extra]
                    cfg = bench.compose_cfg(overrides, out, epochs, 1)
                    bench.EPOCH_STARTS.clear()
                    with (
                        contextlib.redirect_stdout(io.StringIO()),
                        contextlib.redirect_stderr(io.StringIO()),
                    ):
                        train(cfg)
                    per_epoch = [b - a for a, b in pairwise(bench.EPOCH_STARTS)][1:]
                    seconds[name] += per_epoch
                    medians[name] = statistics.median(per_epoch)
                ratios.append(medians["every epoch"] / medians["now"])
            old, new = (statistics.median(seconds[n]) * 1000 for n in TINY_SETTINGS)
            rounds = ", ".join(f"{x:.2f}" for x in ratios)
            print(
                f"tiny {model}: ms per epoch, last.ckpt every epoch {old:6.2f}, now {new:6.2f}; "
                f"every epoch / now {statistics.median(ratios):.2f} (rounds: {rounds}); "
                f"{epochs} epochs now: {new * epochs / 1000:.1f} s"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="deep_rnn_dense", choices=list(bench.MODELS))
    parser.add_argument("--epochs", type=int, default=None, help="epochs (the first is not timed)")
    parser.add_argument("--quick", action="store_true", help="a smoke run: 96 series, 2 epochs")
    parser.add_argument("--tiny", action="store_true", help="a 58-row series, old vs new settings")
    parser.add_argument("--repeats", type=int, default=3, help="--tiny: rounds of both settings")
    args = parser.parse_args()
    if args.epochs is None:
        args.epochs = 200 if args.tiny else 9
    if args.quick:
        args.epochs = 2 if not args.tiny else 3
        args.repeats = 1
    if args.epochs < 2:
        parser.error("--epochs must be at least 2 (the first is a warm-up)")
    set_threads(1)
    for name in ("lightning", "lightning.pytorch"):  # no banner between the figures
        logging.getLogger(name).setLevel(logging.WARNING)
    if args.tiny:
        sys.modules["__main__"].EpochTimer = bench.EpochTimer  # the configs' _target_
        tiny(args.epochs, args.repeats)
        return
    timed(ForecastModule, "training_step", lambda *a: "training_step")
    timed(ForecastModule, "validation_step", lambda *a: "validation_step")
    timed(fetchers._PrefetchDataFetcher, "__next__", lambda *a: "train loader (next batch)")
    timed(ModelCheckpoint, "_save_checkpoint", lambda *a: "checkpoint writes")
    timed(call, "_call_callback_hooks", lambda trainer, hook, *a: f"callbacks: {hook}")

    main_module = sys.modules["__main__"]  # the configs' _target_s below
    main_module.Window, main_module.EpochTimer = Window, bench.EpochTimer
    extra = [
        "+callbacks.window._target_=__main__.Window",
        *(bench.QUICK_DATA if args.quick else []),
    ]
    cfg = bench.compose_cfg(bench.MODELS[args.model], Path("unused"), args.epochs, 1, extra)
    dm = instantiate(cfg.data)
    dm.setup()
    val_times: list[float] = []
    times, _ = bench.plain_loop(cfg, dm, True, args.epochs, val_times)
    val = sum(val_times[1:]) / (args.epochs - 1)
    fit = sum(times[1:]) / (args.epochs - 1) - val
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        bench.ours(cfg)
    per_epoch = {k: v / (args.epochs - 1) * 1000 for k, v in TOTALS.items()}
    steps = per_epoch["training_step"] + per_epoch["validation_step"]
    print(f"{args.model}: ms per epoch, epochs 2-{args.epochs}")
    print(f"  plain loop: training {fit * 1000:8.2f}, validation {val * 1000:6.2f}")
    print("  ours:")
    for key, ms in sorted(per_epoch.items(), key=lambda kv: -kv[1]):
        if ms >= 0.05:
            print(f"    {key:<40} {ms:8.2f}")
    rest = per_epoch["epoch (all of it)"] - steps
    print(f"    {'epoch minus training/validation steps':<40} {rest:8.2f}")
    print("  (callback hooks include the checkpoint writes, the epoch includes the loader)")


if __name__ == "__main__":
    main()

"""Where an epoch of ``train(cfg)`` goes, against the plain loop's epoch on the same net.

    python benchmarks/bench_epoch.py                         # deep_rnn_dense, 9 epochs
    python benchmarks/bench_epoch.py --model seq2seq --epochs 6
    python benchmarks/bench_epoch.py --quick                 # a smoke run: 96 series, 2 epochs

It trains the model once with ``train(cfg)`` (the real config, as ``benchmarks/bench.py``
runs it) and once with the bench's plain loop on the fast net (``bench.plain_loop``),
in one process, and prints milliseconds per epoch (epochs after the first): for ours the
epoch, the time in ``training_step`` and ``validation_step``, in the train loader, in
checkpoint writes and in each callback hook; for the plain loop its training part and its
validation. The difference between an epoch and its steps is the framework's per-epoch work.

The timings wrap Lightning internals (its fetcher, hook dispatch and ``ModelCheckpoint``;
Lightning 2.6): a diagnostic, not part of the package.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import logging
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import bench  # the sibling script (this folder is on sys.path): configs, plain loop, epoch timer
import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loops import fetchers
from lightning.pytorch.trainer import call

from seqforecast.module import ForecastModule
from seqforecast.train import instantiate, set_threads

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="deep_rnn_dense", choices=list(bench.MODELS))
    parser.add_argument("--epochs", type=int, default=9, help="epochs (the first is not timed)")
    parser.add_argument("--quick", action="store_true", help="a smoke run: 96 series, 2 epochs")
    args = parser.parse_args()
    if args.quick:
        args.epochs = 2
    if args.epochs < 2:
        parser.error("--epochs must be at least 2 (the first is a warm-up)")
    set_threads(1)
    logging.getLogger("lightning").setLevel(logging.WARNING)  # no banner between the figures
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

"""Seconds per epoch: our training path vs a plain PyTorch loop, side by side, one process.

    python scripts/bench.py                       # the 4 models of issue #6, 5 epochs each
    python scripts/bench.py --epochs 20 --models deep_rnn_dense seq2seq_gru
    python scripts/bench.py --models all          # also ln_rnn, conv_gru, wavenet
    python scripts/bench.py --set data.batches_per_call=219   # config overrides for every run
    python scripts/bench.py --repeats 3           # each run 3 times, in rotating order
    python scripts/bench.py --set +callbacks.step_hooks._target_=__main__.StepHooks
                                                  # ours with Lightning's per-step dispatch

For each model, on the same generated data (batch 32, 219 steps per epoch, validation
every epoch) it times three runs:

- ``plain``: a plain PyTorch loop written below with the reference torch layers
  (``nn.RNN``/``nn.GRU``/``nn.LSTM``, the readable LN cell) and ``torch.optim.Adam``
  defaults;
- ``plain fused``: the same loop on exactly our network and optimizer (``impl=fused``,
  fused Adam): the yardstick for framework overhead;
- ``ours``: ``train(cfg)`` on the real Hydra config (Lightning Trainer, checkpoints,
  CSV logger, progress bar), timed per epoch by a callback.

It prints median seconds per epoch (the first epoch of each run is a warm-up, not
counted), the ratios, and the last-step validation MSE after the timed epochs. Ratios,
not absolute times, are the point: run it on a quiet machine. With ``--repeats R`` each
of the three runs is made R times, the order rotating every round (so none always runs
first or last); the seconds are medians over all their epochs, and each ratio is the
median over rounds of that round's ratio (runs of one round are adjacent in time, so a
machine whose speed drifts affects both sides alike).
The Keras column repeats issue #6's own measurement (Keras 3 / TF-CPU, 2 cores) for
reference; it is not rerun here.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from itertools import pairwise
from pathlib import Path
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from hydra import compose, initialize_config_dir
from torch import nn

from seqforecast.models import build_net, output_steps
from seqforecast.train import instantiate, set_threads, train

CONF = Path(__file__).resolve().parents[1] / "conf"

# name -> config overrides; the LSTM/GRU models (book cells 70, 76) reuse the seq2seq option.
MODELS: dict[str, list[str]] = {
    "deep_rnn_dense": ["model=deep_rnn_dense"],
    "seq2seq": ["model=seq2seq"],
    "seq2seq_lstm": ["model=seq2seq", "model.net=lstm", "model.lr=0.001"],
    "seq2seq_gru": ["model=seq2seq", "model.net=gru", "model.lr=0.001"],
    "ln_rnn": ["model=ln_rnn"],
    "conv_gru": ["model=conv_gru"],
    "wavenet": ["model=wavenet"],
}
DEFAULT_MODELS = ["deep_rnn_dense", "seq2seq", "seq2seq_lstm", "seq2seq_gru"]
# Issue #6's measurement, median s/epoch (20 epochs, batch 32, 2-core CPU): not rerun here.
KERAS = {"deep_rnn_dense": 1.77, "seq2seq": 2.62, "seq2seq_lstm": 4.11, "seq2seq_gru": 4.63}

EPOCH_STARTS: list[float] = []
VAL_MSE_LAST: list[float] = []  # ours: the last-step validation MSE after every epoch
# wall: time.perf_counter; cpu: this process's CPU time (steadier on a shared machine).
CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}
clock = CLOCKS["wall"]  # set by --clock


class EpochTimer(L.Callback):
    """Records the start of every training epoch and the end of fit (validation included)."""

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        EPOCH_STARTS.append(clock())

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.sanity_checking:
            VAL_MSE_LAST.append(float(trainer.callback_metrics["val/mse_last"]))

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        EPOCH_STARTS.append(clock())


class StepHooks(L.Callback):
    """Listens to the per-step hooks: with it, ``ForecastModule`` steps through Lightning.

    (``manual_backward`` and ``LightningOptimizer.step`` on every step instead of the direct
    path; nothing else changes, for an A/B of that path.)
    """

    def on_before_optimizer_step(
        self, trainer: L.Trainer, pl_module: L.LightningModule, optimizer: Any
    ) -> None:
        pass


def compose_cfg(
    overrides: list[str], out: Path, epochs: int, threads: int | None = 1, extra: list[str] = ()
) -> Any:
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(
            "train",
            overrides=[
                *overrides,
                f"output_dir={out}",
                f"trainer.max_epochs={epochs}",
                f"threads={threads or 'null'}",
                # torch's init, as the plain loops use: all three runs start from equal weights.
                "model.init=torch",
                "trainer.accelerator=cpu",
                "trainer.enable_model_summary=false",
                "+callbacks.epoch_timer._target_=__main__.EpochTimer",
                *extra,
            ],
        )
    return cfg


def val_mse_last(net: nn.Module, x: torch.Tensor, y: torch.Tensor, seq2seq: bool) -> float:
    """Mean squared error of the last step's ``k`` outputs over the validation set."""
    net.eval()
    with torch.no_grad():
        y_hat = torch.cat([net(xb) for xb in x.split(1024)])  # [N, k] | [N, T, k]
    net.train()
    if seq2seq:
        y_hat, y = y_hat[:, -1], y[:, -1]
    return F.mse_loss(y_hat, y).item()


def plain_loop(
    cfg: Any, dm: Any, impl: str, epochs: int, val_times: list[float] | None = None
) -> tuple[list[float], float]:
    """A plain PyTorch training loop; ``impl="torch"`` uses torch's layers and Adam defaults.

    Returns per-epoch seconds (training + validation) and the last validation MSE; each
    epoch's validation seconds are appended to ``val_times`` when given.
    """
    m = cfg.model
    torch.manual_seed(cfg.seed)
    net_keys = ("hidden", "head", "filters", "kernel_size", "stride", "dilations")
    net = build_net(
        m.net,
        n_steps=m.n_steps,
        n_features=m.n_features,
        horizon=m.horizon,
        target=m.target,
        impl=impl,
        **{k: m[k] for k in net_keys if k in m},
    )
    fused = impl == "fused"
    opt = torch.optim.Adam(net.parameters(), lr=m.lr, fused=fused)
    x, y = dm.splits["train"]
    x_val, y_val = dm.splits["val"]
    if m.target == "seq2seq":  # nets with fewer output steps are scored on their steps
        steps = output_steps(net, m.n_steps)
        y, y_val = y[:, steps], y_val[:, steps]
    times = []
    for epoch in range(epochs):
        start = clock()
        g = torch.Generator().manual_seed(cfg.seed + epoch)
        for idx in torch.randperm(len(x), generator=g).split(cfg.data.batch_size):
            loss = F.mse_loss(net(x[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        val_start = clock()
        mse = val_mse_last(net, x_val, y_val, m.target == "seq2seq")
        times.append(clock() - start)
        if val_times is not None:
            val_times.append(clock() - val_start)
    return times, mse


def ours(cfg: Any) -> tuple[list[float], float]:
    """``train(cfg)``: per-epoch seconds (training + validation + checkpoint) and the last
    epoch's val MSE (``train`` itself reports the best checkpoint's)."""
    EPOCH_STARTS.clear()
    VAL_MSE_LAST.clear()
    with tempfile.TemporaryDirectory() as tmp:
        run_cfg = cfg.copy()
        run_cfg.output_dir = tmp  # a fresh run folder for every repeat
        train(run_cfg)
    times = [b - a for a, b in pairwise(EPOCH_STARTS)]
    return times, VAL_MSE_LAST[-1]


RUNS = ("plain", "p.fused", "ours")


def run(key: str, cfg: Any, dm: Any, epochs: int) -> tuple[list[float], float]:
    """One of the three timed runs: per-epoch seconds and the last validation MSE."""
    if key == "ours":
        return ours(cfg)
    return plain_loop(cfg, dm, "torch" if key == "plain" else "fused", epochs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--epochs", type=int, default=5, help="epochs per run (median of all but the first)"
    )
    parser.add_argument(
        "--models", nargs="+", default=DEFAULT_MODELS, choices=[*MODELS, "all"], metavar="MODEL"
    )
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (0: default)")
    parser.add_argument(
        "--repeats", type=int, default=1, help="rounds of the three runs, order rotating"
    )
    parser.add_argument(
        "--clock",
        choices=list(CLOCKS),
        default="wall",
        help="wall time, or the process's CPU time (steadier when other jobs share the CPU)",
    )
    parser.add_argument(
        "--set",
        nargs="*",
        default=[],
        metavar="KEY=VALUE",
        help="config overrides for every model (e.g. data.batches_per_call=219)",
    )
    args = parser.parse_args()
    global clock
    clock = CLOCKS[args.clock]
    models = list(MODELS) if "all" in args.models else args.models
    set_threads(args.threads or None)
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), {args.epochs} epochs, "
        f"{args.clock} clock"
    )

    header = (
        f"{'model':<15} {'keras*':>7} {'plain':>7} {'p.fused':>7} {'ours':>7} {'ours/pf':>7} "
        f"{'(rounds)':>10} {'plain/ours':>10}   val mse_last: plain / p.fused / ours"
    )
    rows = []
    for name in models:
        cfg = compose_cfg(MODELS[name], Path("unused"), args.epochs, args.threads, args.set)
        dm = instantiate(cfg.data)
        dm.setup()
        times: dict[str, list[float]] = {k: [] for k in RUNS}
        rounds: list[dict[str, float]] = []  # each round's median per run
        mse: dict[str, float] = {}
        for r in range(args.repeats):
            rounds.append({})
            for key in RUNS[r % 3 :] + RUNS[: r % 3]:
                t, mse[key] = run(key, cfg, dm, args.epochs)
                t = t[1:] or t  # the first epoch warms up (compiled code, caches)
                times[key] += t
                rounds[-1][key] = statistics.median(t)
        p, pf, o = (statistics.median(times[k]) for k in RUNS)
        o_pf_rounds = [m["ours"] / m["p.fused"] for m in rounds]
        o_pf = statistics.median(o_pf_rounds)
        p_o = statistics.median(m["plain"] / m["ours"] for m in rounds)
        keras = f"{KERAS[name]:7.2f}" if name in KERAS else f"{'-':>7}"
        rows.append(
            f"{name:<15} {keras} {p:7.3f} {pf:7.3f} {o:7.3f} {o_pf:7.3f} "
            f"{min(o_pf_rounds):5.2f}-{max(o_pf_rounds):4.2f} {p_o:10.2f}   "
            f"{mse['plain']:.5f} / {mse['p.fused']:.5f} / {mse['ours']:.5f}"
        )
        print(rows[-1], flush=True)
    print("\nseconds per epoch (median); plain: torch layers + Adam defaults; p.fused: plain")
    print("loop on our fused layers + fused Adam; ours: train(cfg); ratios: median over rounds")
    print("of each round's ratio, (rounds): their range; keras*: issue #6's figure, not rerun")
    print(header)
    print("\n".join(rows))


if __name__ == "__main__":
    main()

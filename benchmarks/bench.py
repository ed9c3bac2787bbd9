"""Seconds per epoch: our training path against plain PyTorch and bare Lightning, one process.

    python benchmarks/bench.py                       # the 4 recurrent models, 5 epochs each
    python benchmarks/bench.py --epochs 20 --models deep_rnn_dense seq2seq_gru
    python benchmarks/bench.py --models all          # also ln_rnn, conv_gru, wavenet
    python benchmarks/bench.py --set trainer.precision=bf16-mixed   # overrides for every run
    python benchmarks/bench.py --repeats 5           # each run 5 times, in rotating order
    python benchmarks/bench.py --accelerator gpu     # the same on CUDA
    python benchmarks/bench.py --quick               # a smoke run: tiny data, 2 epochs, 1 model

For each model, on the same generated data (batch 32, 219 steps per epoch, validation
every epoch) it times four runs:

- ``plain``: a plain PyTorch training loop written below on the plain torch layers
  (``nn.RNN``/``nn.GRU``/``nn.LSTM``, the readable LN cell; ``layers=plain``) and
  ``torch.optim.Adam`` defaults: what eager torch gives;
- ``p.fast``: the same loop on exactly our network (``layers=fast``) and optimizer
  (fused Adam): the yardstick for the layers' speed;
- ``bare L``: a minimal LightningModule on the same network, optimizer and in-memory
  index batches, automatic optimization, validation every epoch, and a Trainer with no
  progress bar, logger or checkpoints: what Lightning's loop itself costs;
- ``ours``: ``train(cfg)`` on the real Hydra config (Trainer, checkpoints, CSV logger,
  progress bar, metrics), timed per epoch by a callback.

It prints median seconds per epoch (the first epoch of each run is a warm-up, not
counted), the ratios ``ours/bare L`` (what we add on top of Lightning), ``bare L/p.fast``
(Lightning's own per-step cost) and ``plain/ours`` (our lead over eager torch), and the
last-step validation MSE after the timed epochs. Ratios, not absolute times, are the
point: with ``--repeats R`` each run is made R times, the order rotating every round (so
none always runs first or last); the seconds are medians over all their epochs, and each
ratio is the median over rounds of that round's ratio (runs of one round are adjacent in
time, so a machine whose speed drifts affects both sides alike).
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
from omegaconf import OmegaConf
from torch import nn

from seqforecast import auto
from seqforecast.data.batches import TensorPairs, batch_loader
from seqforecast.fast import accelerate
from seqforecast.models import NetSettings, build_net, output_steps
from seqforecast.models.init import adam_eps
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
# --quick: every run on data small enough for a smoke test (tests/test_benchmarks.py).
QUICK_DATA = [
    "data.n_series=96",
    "data.split=[64,16,16]",
    "data.batch_size=16",
    "trainer.log_every_n_steps=1",
]

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
        logged = trainer.callback_metrics.get("val/mse_last")  # ours logs it; bare L keeps it
        if not trainer.sanity_checking and logged is not None:
            VAL_MSE_LAST.append(float(logged))

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        EPOCH_STARTS.append(clock())


def compose_cfg(
    overrides: list[str],
    out: Path,
    epochs: int,
    threads: int | None = 1,
    extra: list[str] = (),
    accelerator: str = "cpu",
) -> Any:
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(
            "train",
            overrides=[
                *overrides,
                f"output_dir={out}",
                f"trainer.max_epochs={epochs}",
                f"threads={threads or 'null'}",
                # torch's init, as the plain loops use: all four runs start from equal weights.
                "model.init=torch",
                f"trainer.accelerator={accelerator}",
                "trainer.enable_model_summary=false",
                "+callbacks.epoch_timer._target_=__main__.EpochTimer",
                *extra,
            ],
        )
    return auto.resolve(cfg)  # season, n_steps, patience: auto -> values, as train does


def val_mse_last(net: nn.Module, x: torch.Tensor, y: torch.Tensor, seq2seq: bool) -> float:
    """Mean squared error of the last step's ``k`` outputs over the validation set."""
    net.eval()
    with torch.no_grad():
        y_hat = torch.cat([net(xb) for xb in x.split(1024)])  # [N, k] | [N, T, k]
    net.train()
    if seq2seq:
        y_hat, y = y_hat[:, -1], y[:, -1]
    return F.mse_loss(y_hat, y).item()


def make_net(cfg: Any, fast: bool) -> nn.Module:
    """The configured network, seeded; ``fast``: with the fast layers swapped in."""
    settings = NetSettings.from_hparams(OmegaConf.to_container(cfg.model, resolve=True))
    torch.manual_seed(cfg.seed)
    net = build_net(settings)
    return accelerate(net) if fast else net


def aligned_splits(cfg: Any, dm: Any, net: nn.Module) -> tuple[torch.Tensor, ...]:
    """Train and validation ``(x, y)``, seq2seq targets aligned to the net's output steps."""
    train, val = dm.splits["train"], dm.splits["val"]  # TensorPairs: the split's tensors
    x, y, x_val, y_val = train.x, train.y, val.x, val.y
    if cfg.model.target == "seq2seq":  # nets with fewer output steps are scored on their steps
        steps = output_steps(net, cfg.model.n_steps)
        y, y_val = y[:, steps], y_val[:, steps]
    return x, y, x_val, y_val


def plain_loop(
    cfg: Any, dm: Any, fast: bool, epochs: int, val_times: list[float] | None = None
) -> tuple[list[float], float]:
    """A plain PyTorch training loop; ``fast=False``: the plain layers and Adam defaults.

    Returns per-epoch seconds (training + validation) and the last validation MSE; each
    epoch's validation seconds are appended to ``val_times`` when given.
    """
    device = torch.device("cuda" if cfg.trainer.accelerator == "gpu" else "cpu")
    net = make_net(cfg, fast).to(device)
    opt = torch.optim.Adam(net.parameters(), lr=cfg.model.lr, fused=fast)
    x, y, x_val, y_val = (t.to(device) for t in aligned_splits(cfg, dm, net))
    times = []
    for epoch in range(epochs):
        start = clock()
        g = torch.Generator().manual_seed(cfg.seed + epoch)
        for idx in torch.randperm(len(x), generator=g).split(cfg.data.batch_size):
            idx = idx.to(device)
            loss = F.mse_loss(net(x[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        val_start = clock()
        mse = val_mse_last(net, x_val, y_val, cfg.model.target == "seq2seq")
        times.append(clock() - start)
        if val_times is not None:
            val_times.append(clock() - val_start)
    return times, mse


class BareModule(L.LightningModule):
    """The least a LightningModule needs to train and validate ``net`` as ``ours`` does."""

    def __init__(self, net: nn.Module, lr: float, eps: float, seq2seq: bool) -> None:
        super().__init__()
        self.net, self.lr, self.eps, self.seq2seq = net, lr, eps, seq2seq
        self.val_sum, self.val_rows = 0.0, 0

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> Any:
        x, y = batch
        return F.mse_loss(self.net(x), y)

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        x, y = batch
        y_hat = self.net(x)
        if self.seq2seq:
            y_hat, y = y_hat[:, -1], y[:, -1]
        self.val_sum += F.mse_loss(y_hat, y, reduction="sum").item() / y.shape[-1]
        self.val_rows += len(x)

    def on_validation_epoch_end(self) -> None:
        VAL_MSE_LAST.append(self.val_sum / self.val_rows)
        self.val_sum, self.val_rows = 0.0, 0

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.net.parameters(), lr=self.lr, eps=self.eps, fused=True)


def bare_lightning(cfg: Any, dm: Any, epochs: int) -> tuple[list[float], float]:
    """``BareModule`` under a Trainer with no bar, logger or checkpoints."""
    EPOCH_STARTS.clear()
    VAL_MSE_LAST.clear()
    net = make_net(cfg, fast=True)
    x, y, x_val, y_val = aligned_splits(cfg, dm, net)
    batch = cfg.data.batch_size
    module = BareModule(
        net, cfg.model.lr, adam_eps(cfg.model.init, None), cfg.model.target == "seq2seq"
    )
    trainer = L.Trainer(
        accelerator=cfg.trainer.accelerator,
        devices=1,
        precision=cfg.trainer.precision,
        max_epochs=epochs,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        callbacks=[EpochTimer()],
    )
    train_loader = batch_loader(TensorPairs(x, y), batch, seed=cfg.seed)
    val_loader = batch_loader(TensorPairs(x_val, y_val), cfg.data.eval_batch_size)
    trainer.fit(module, train_dataloaders=train_loader, val_dataloaders=val_loader)
    times = [b - a for a, b in pairwise(EPOCH_STARTS)]
    return times, VAL_MSE_LAST[-1]


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


RUNS = ("plain", "p.fast", "bare L", "ours")


def run(key: str, cfg: Any, dm: Any, epochs: int) -> tuple[list[float], float]:
    """One of the timed runs: per-epoch seconds and the last validation MSE."""
    if key == "ours":
        return ours(cfg)
    if key == "bare L":
        return bare_lightning(cfg, dm, epochs)
    return plain_loop(cfg, dm, key == "p.fast", epochs)


def paired(rounds: list[dict[str, float]], a: str, b: str) -> tuple[float, float, float]:
    """Median over rounds of each round's ``a / b``, and the smallest and largest of them."""
    ratios = [m[a] / m[b] for m in rounds]
    return statistics.median(ratios), min(ratios), max(ratios)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--epochs", type=int, default=5, help="epochs per run (median of all but the first)"
    )
    parser.add_argument(
        "--models", nargs="+", default=None, choices=[*MODELS, "all"], metavar="MODEL"
    )
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (0: default)")
    parser.add_argument(
        "--repeats", type=int, default=1, help="rounds of the four runs, order rotating"
    )
    parser.add_argument("--accelerator", choices=["cpu", "gpu"], default="cpu")
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
        help="config overrides for every model (e.g. trainer.precision=bf16-mixed)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a smoke run: 96 series, 2 epochs, deep_rnn_dense unless --models is given",
    )
    args = parser.parse_args()
    if args.quick:
        args.epochs, args.set = 2, [*QUICK_DATA, *args.set]
    args.models = args.models or (["deep_rnn_dense"] if args.quick else DEFAULT_MODELS)
    global clock
    clock = CLOCKS[args.clock]
    models = list(MODELS) if "all" in args.models else args.models
    set_threads(args.threads or None)
    print(
        f"torch {torch.__version__}, lightning {L.__version__}, {torch.get_num_threads()} "
        f"thread(s), {args.accelerator}, {args.epochs} epochs, {args.clock} clock"
    )
    header = (
        f"{'model':<15} {'plain':>7} {'p.fast':>7} {'bare L':>7} {'ours':>7} "
        f"{'ours/bare':>17} {'bare/p.fast':>17} {'plain/ours':>10}   "
        "val mse_last: plain / p.fast / bare L / ours"
    )
    rows = []
    for name in models:
        cfg = compose_cfg(
            MODELS[name], Path("unused"), args.epochs, args.threads, args.set, args.accelerator
        )
        dm = instantiate(cfg.data)
        dm.setup()
        times: dict[str, list[float]] = {k: [] for k in RUNS}
        rounds: list[dict[str, float]] = []  # each round's median per run
        mse: dict[str, float] = {}
        for r in range(args.repeats):
            rounds.append({})
            shift = r % len(RUNS)
            for key in RUNS[shift:] + RUNS[:shift]:
                t, mse[key] = run(key, cfg, dm, args.epochs)
                t = t[1:] or t  # the first epoch warms up (compiled code, caches)
                times[key] += t
                rounds[-1][key] = statistics.median(t)
        secs = " ".join(f"{statistics.median(times[k]):7.3f}" for k in RUNS)
        ratios = [paired(rounds, "ours", "bare L"), paired(rounds, "bare L", "p.fast")]
        cells = " ".join(f"{m:6.3f} ({lo:.2f}-{hi:.2f})" for m, lo, hi in ratios)
        plain_ours = paired(rounds, "plain", "ours")[0]
        rows.append(
            f"{name:<15} {secs} {cells} {plain_ours:10.2f}   "
            + " / ".join(f"{mse[k]:.5f}" for k in RUNS)
        )
        print(rows[-1], flush=True)
    print("\nseconds per epoch (median); plain: plain layers + Adam defaults; p.fast: the plain")
    print("loop on our fast layers + fused Adam; bare L: a bare Lightning loop on those; ours:")
    print("train(cfg). Ratios: median over rounds of each round's ratio (range in brackets).")
    print(header)
    print("\n".join(rows))


if __name__ == "__main__":
    main()

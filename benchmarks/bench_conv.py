"""Seconds per training epoch of the conv nets: channels-first (plain) vs channels-last (fast).

A plain loop (Adam lr 1e-3, batch 32, MSE on the seq2seq targets, the 7000 training series),
one intra-op thread, CPU time per epoch (``time.process_time``). Each net is trained twice from
the same weights and data order, its epochs interleaved with the other's so load affects both:
``channels-first``, the plain net of ``seqforecast.models.conv`` (with its GRU stack, if any,
accelerated, so only the convs differ), and ``channels-last``, the net after
``seqforecast.fast.accelerate``. Prints the median seconds per epoch and the validation MSE
after the last epoch (``--dtype float64`` shows that both train the same net up to rounding).

    python benchmarks/bench_conv.py --epochs 3 --nets wavenet wavenet_gated conv_gru
    python benchmarks/bench_conv.py --quick      # a smoke run: 96 series, 1 epoch
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time

import torch
import torch.nn.functional as F
from torch import nn

from seqforecast.data.sine import SineDataModule
from seqforecast.fast import accelerate
from seqforecast.models.conv import ConvGRU, GatedWaveNet, WaveNet

NETS = {
    "wavenet": lambda: WaveNet(1, 10),
    "wavenet_gated": lambda: GatedWaveNet(1, 10),
    "conv_gru": lambda: ConvGRU(1, 10, [20, 20]),
}


def build(name: str) -> dict[str, nn.Module]:
    """The two versions of net ``name`` on equal weights: ``{label: net}``."""
    if name not in NETS:
        raise SystemExit(f"unknown net {name!r}; choose from {list(NETS)}")
    plain = NETS[name]()
    if isinstance(plain, ConvGRU):
        plain.stack = accelerate(plain.stack)  # fused GRU layers in both: only the conv differs
    return {"channels-first": plain, "channels-last": accelerate(copy.deepcopy(plain))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    parser.add_argument("--nets", nargs="+", default=["wavenet", "wavenet_gated", "conv_gru"])
    parser.add_argument("--quick", action="store_true", help="a smoke run: 96 series, 1 epoch")
    args = parser.parse_args()
    torch.set_num_threads(1)
    sizes = dict(n_series=96, split=(64, 16, 16)) if args.quick else {}
    epochs = 1 if args.quick else args.epochs
    dm = SineDataModule(horizon=10, target="seq2seq", **sizes)
    dm.setup()
    dtype = getattr(torch, args.dtype)
    train, val = dm.splits["train"], dm.splits["val"]  # TensorPairs: the split's tensors
    x_tr, y_tr = train.x.to(dtype), train.y.to(dtype)
    x_va, y_va = val.x.to(dtype), val.y.to(dtype)
    for name in args.nets:
        torch.manual_seed(0)
        nets = build(name)
        runs = {}
        for label, net in nets.items():
            net = net.to(dtype)
            runs[label] = (net, torch.optim.Adam(net.parameters(), lr=1e-3), [])
        steps = next(iter(nets.values())).output_steps(x_tr.shape[1])
        for epoch in range(epochs):
            order = torch.randperm(len(x_tr), generator=torch.Generator().manual_seed(epoch))
            for net, opt, times in runs.values():
                start = time.process_time()
                for i in range(0, len(order), 32):
                    idx = order[i : i + 32]
                    loss = F.mse_loss(net(x_tr[idx]), y_tr[idx][:, steps])
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
                times.append(time.process_time() - start)
        base = statistics.median(next(iter(runs.values()))[2])
        for label, (net, _, times) in runs.items():
            with torch.no_grad():
                pred = net(x_va)
                err = (pred - y_va[:, steps]) ** 2
            med = statistics.median(times)
            print(
                f"{name:14s} {label:14s} {med:6.3f} s/epoch  ratio {base / med:5.2f}  "
                f"val mse {err.mean().item():.8f}  last step {err[:, -1].mean().item():.8f}"
            )


if __name__ == "__main__":
    main()

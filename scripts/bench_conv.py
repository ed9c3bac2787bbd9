"""Seconds per training epoch of the conv nets: channels-first (before) vs channels-last (now).

A plain loop (Adam lr 1e-3, batch 32, MSE on the seq2seq targets, the 7000 training series),
one intra-op thread, CPU time per epoch (``time.process_time``). Each net is trained twice from
the same weights and data order, its epochs interleaved with the other's so load affects both;
prints the median seconds per epoch and the validation MSE after the last epoch
(``--dtype float64`` shows that both forwards train the same net up to rounding).

    python scripts/bench_conv.py --epochs 3 --nets wavenet wavenet_gated conv_gru
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
from seqforecast.models.conv import ConvGRU, GatedWaveNet, WaveNet


def _causal_cf(conv: nn.Conv1d, z: torch.Tensor) -> torch.Tensor:
    """The former channels-first ``CausalConv1d.forward``: ``[B, C, T] -> [B, C', T]``."""
    pad = (conv.kernel_size[0] - 1) * conv.dilation[0]
    return F.conv1d(F.pad(z, (pad, 0)), conv.weight, conv.bias, dilation=conv.dilation)


def wavenet_before(net: WaveNet, x: torch.Tensor) -> torch.Tensor:
    """The former ``WaveNet.forward`` (channels first, ``F.conv1d``)."""
    z = x.transpose(1, 2)  # [B, F, T]
    for conv in net.convs:
        z = torch.relu(_causal_cf(conv, z))  # [B, C, T]
    return F.conv1d(z, net.out.weight, net.out.bias).transpose(1, 2)  # [B, T, k]


def gated_before(net: GatedWaveNet, x: torch.Tensor) -> torch.Tensor:
    """The former ``GatedWaveNet.forward``."""
    z = _causal_cf(net.first, x.transpose(1, 2))  # [B, C, T]
    skips = 0
    for gate, mix in zip(net.gates, net.mixes, strict=True):
        a, b = _causal_cf(gate, z).chunk(2, dim=1)
        s = F.conv1d(torch.tanh(a) * torch.sigmoid(b), mix.weight, mix.bias)
        z, skips = z + s, skips + s
    z = torch.relu(F.conv1d(torch.relu(skips), net.post.weight, net.post.bias))
    return F.conv1d(z, net.out.weight, net.out.bias).transpose(1, 2)


def conv_gru_before(net: ConvGRU, x: torch.Tensor) -> torch.Tensor:
    """The former ``ConvGRU.forward`` (``F.conv1d`` between two transposes)."""
    z = net.conv(x.transpose(1, 2)).transpose(1, 2)  # [B, T', C]
    return net.head(net.stack(z))


def build(name: str) -> tuple[nn.Module, dict]:
    """A net and its forwards to compare: ``{label: forward(net, x)}``."""
    if name == "wavenet":
        net = WaveNet(1, 10)
        return net, {
            "before": wavenet_before,
            "now": nn.Module.__call__,
        }
    if name == "wavenet_gated":
        return GatedWaveNet(1, 10), {"before": gated_before, "now": nn.Module.__call__}
    if name == "conv_gru":
        net = ConvGRU(1, 10, [20, 20], impl="fused")
        return net, {"before": conv_gru_before, "now": nn.Module.__call__}
    raise SystemExit(f"unknown net {name!r}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    parser.add_argument("--nets", nargs="+", default=["wavenet", "wavenet_gated", "conv_gru"])
    args = parser.parse_args()
    torch.set_num_threads(1)
    dm = SineDataModule(horizon=10, target="seq2seq")
    dm.setup()
    dtype = getattr(torch, args.dtype)
    x_tr, y_tr = (t.to(dtype) for t in dm.splits["train"])
    x_va, y_va = (t.to(dtype) for t in dm.splits["val"])
    for name in args.nets:
        torch.manual_seed(0)
        net0, forwards = build(name)
        net0 = net0.to(dtype)
        steps = net0.output_steps(x_tr.shape[1])
        runs = {}
        for label in forwards:
            net = copy.deepcopy(net0)
            runs[label] = (net, torch.optim.Adam(net.parameters(), lr=1e-3), [])
        for epoch in range(args.epochs):
            order = torch.randperm(len(x_tr), generator=torch.Generator().manual_seed(epoch))
            for label, (net, opt, times) in runs.items():
                forward = forwards[label]
                start = time.process_time()
                for i in range(0, len(order), 32):
                    idx = order[i : i + 32]
                    loss = F.mse_loss(forward(net, x_tr[idx]), y_tr[idx][:, steps])
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
                times.append(time.process_time() - start)
        base = statistics.median(next(iter(runs.values()))[2])
        for label, (net, _, times) in runs.items():
            with torch.no_grad():
                pred = forwards[label](net, x_va)
                err = (pred - y_va[:, steps]) ** 2
            med = statistics.median(times)
            print(
                f"{name:14s} {label:10s} {med:6.3f} s/epoch  ratio {base / med:5.2f}  "
                f"val mse {err.mean().item():.8f}  last step {err[:, -1].mean().item():.8f}"
            )


if __name__ == "__main__":
    main()

"""Seconds per training epoch of the ln_rnn model (book cell 80): reference loop vs fused layer.

A plain loop (Adam lr 1e-3, batch 32, the 7000 training series, one thread), the three
variants' epochs interleaved so load affects all of them: ``torch`` (the readable step
loop of the plain net, ``layers=plain``), ``fused-torch`` (the net after
``seqforecast.fast.accelerate``, with its torch time loops, ``SEQFORECAST_NUMBA=0``) and
``fused-numba`` (its compiled loops). All three start from the same weights. Prints each
epoch's time and validation MSE, then the medians.

    python benchmarks/bench_ln.py --epochs 5
    python benchmarks/bench_ln.py --quick        # a smoke run: 96 series, 1 epoch
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import time

import torch
import torch.nn.functional as F

from seqforecast.data.sine import SineDataModule
from seqforecast.fast import accelerate
from seqforecast.models import NetSettings, build_net

# variant: (accelerated, SEQFORECAST_NUMBA)
VARIANTS = {"torch": (False, "0"), "fused-torch": (True, "0"), "fused-numba": (True, "1")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="a smoke run: 96 series, 1 epoch")
    args = parser.parse_args()
    torch.set_num_threads(1)
    sizes = dict(n_series=96, split=(64, 16, 16)) if args.quick else {}
    epochs = 1 if args.quick else args.epochs
    dm = SineDataModule(n_steps=50, horizon=10, target="seq2seq", **sizes)
    dm.setup()
    train, val = dm.splits["train"], dm.splits["val"]  # TensorPairs: the split's tensors
    x, y, x_val, y_val = train.x, train.y, val.x, val.y
    kw = dict(n_steps=50, n_features=1, horizon=10, target="seq2seq", hidden=[20, 20])
    torch.manual_seed(42)
    plain = build_net(NetSettings("ln_rnn", head="per_step", **kw))
    nets, opts = {}, {}
    for name, (fast, _) in VARIANTS.items():
        net = copy.deepcopy(plain)
        nets[name] = accelerate(net) if fast else net
        opts[name] = torch.optim.Adam(nets[name].parameters(), lr=1e-3)
    os.environ["SEQFORECAST_NUMBA"] = "1"
    nets["fused-numba"](x[:2]).sum().backward()  # load the compiled loops before timing
    nets["fused-numba"].zero_grad(set_to_none=True)
    times: dict[str, list[float]] = {name: [] for name in VARIANTS}
    for epoch in range(epochs):
        for name, (_, numba) in VARIANTS.items():
            os.environ["SEQFORECAST_NUMBA"] = numba
            net, opt = nets[name], opts[name]
            g = torch.Generator().manual_seed(42 + epoch)
            start = time.perf_counter()
            for idx in torch.randperm(len(x), generator=g).split(32):
                loss = F.mse_loss(net(x[idx]), y[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
            times[name].append(time.perf_counter() - start)
            with torch.no_grad():
                y_hat = torch.cat([net(xb) for xb in x_val.split(1024)])
            mse = F.mse_loss(y_hat, y_val).item()
            last = F.mse_loss(y_hat[:, -1], y_val[:, -1]).item()
            print(
                f"epoch {epoch + 1} {name:12s} {times[name][-1]:6.3f} s  val mse {mse:.6f}  "
                f"last step {last:.6f}",
                flush=True,
            )
    ref = statistics.median(times["torch"])
    for name, t in times.items():
        med = statistics.median(t)
        print(f"{name:12s} median {med:.3f} s/epoch  speed-up vs torch {ref / med:.2f}x")


if __name__ == "__main__":
    main()

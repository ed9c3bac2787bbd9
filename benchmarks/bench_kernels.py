"""Microseconds per call of the fused tanh-RNN and GRU layers at the chapter's sizes.

One thread, float32, batch 32, 50 steps, 20 units, 1-feature input. Times forward+backward
of the plain ``nn.RNN`` layer, the fused layer (:class:`~seqforecast.fast.fused.FusedRNN`),
the two-layer stack RNN(20)-RNN(20) and the fused GRU layer, and the fused RNN's forward
alone (autograd recording); prints the median over many rounds. With ``--baseline DIR`` (a
copy of ``src/seqforecast/fast/`` from another revision: its ``jit.py``, ``kernels.py``,
``fused.py`` and, where it has one, ``functions.py``) each case also runs on that code, in
alternating order within each round so that machine load hits both alike, and the ratio is
printed.

    python benchmarks/bench_kernels.py
    python benchmarks/bench_kernels.py --baseline /tmp/orig --rounds 400
    python benchmarks/bench_kernels.py --quick      # a smoke run: 3 rounds of 1 call
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import torch
from torch import nn

from seqforecast.fast import fused

B, T, H, F = 32, 50, 20, 1


# The modules of fast/ that the fused layers run on, in import order; functions.py is optional.
BASELINE_MODULES = ("jit", "kernels", "functions", "fused")
BASELINE_NEEDS = {"jit", "kernels", "fused"}


def load_baseline(folder: Path) -> ModuleType:
    """``fused.py`` from ``folder``, running on that folder's other modules of ``fast/``."""
    shorts = [s for s in BASELINE_MODULES if (folder / f"{s}.py").is_file()]
    if missing := sorted(BASELINE_NEEDS - set(shorts)):
        raise SystemExit(
            f"--baseline {folder}: no {', '.join(f'{m}.py' for m in missing)}; "
            "expected a copy of src/seqforecast/fast/"
        )
    names = [f"seqforecast.fast.{s}" for s in BASELINE_MODULES]
    saved = {name: sys.modules.get(name) for name in names}
    loaded = {}
    try:
        for short in shorts:  # each imports its siblings through sys.modules: the copies
            name = f"seqforecast.fast.{short}"
            spec = importlib.util.spec_from_file_location(name, folder / f"{short}.py")
            module = importlib.util.module_from_spec(spec)
            sys.modules[name] = module
            spec.loader.exec_module(module)
            loaded[short] = module
    finally:
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module
    for module in loaded.values():  # `from seqforecast.fast import kernels` took the package's
        if hasattr(module, "kernels"):
            module.kernels = loaded["kernels"]
    return loaded["fused"]


def cases(fused_mod: ModuleType) -> dict[str, Callable[[], object]]:
    """Name -> a call that runs one forward+backward (or one kernel) at the chapter's sizes."""
    torch.manual_seed(0)
    plain = nn.RNN(F, H, batch_first=True)
    layer = fused_mod.FusedRNN.from_plain(nn.RNN(F, H, batch_first=True))
    stack = [fused_mod.FusedRNN.from_plain(nn.RNN(n, H, batch_first=True)) for n in (F, H)]
    gru = fused_mod.FusedGRU.from_plain(nn.GRU(F, H, batch_first=True))
    x = torch.randn(B, T, F)

    def layer_step(module: nn.Module) -> Callable[[], object]:
        return lambda: module(x)[0].sum().backward()

    def layer_forward() -> None:
        layer(x)

    def stack_step() -> None:
        out = x
        for module in stack:
            out = module(out)[0]
        out.sum().backward()

    return {
        "nn.RNN fwd+bwd": layer_step(plain),
        "FusedRNN fwd": layer_forward,
        "FusedRNN fwd+bwd": layer_step(layer),
        "2 x FusedRNN fwd+bwd": stack_step,
        "FusedGRU fwd+bwd": layer_step(gru),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--calls", type=int, default=5, help="calls timed together per round")
    parser.add_argument("--baseline", type=Path, help="a copy of fast/ from another revision")
    parser.add_argument("--quick", action="store_true", help="a smoke run: 3 rounds of 1 call")
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.calls = 3, 1
    torch.set_num_threads(1)
    os.environ["SEQFORECAST_NUMBA"] = "1"
    variants = {"new": cases(fused)}
    if args.baseline:
        old = load_baseline(args.baseline)
        variants = {"old": cases(old), **variants}
    times: dict[tuple[str, str], list[float]] = {}
    for name, fns in variants.items():
        for case, fn in fns.items():
            for _ in range(3):  # compile (or load the cache) and warm up
                fn()
            times[case, name] = []
    for n in range(args.rounds):
        order = list(variants) if n % 2 else list(variants)[::-1]  # neither always runs first
        for case in variants["new"]:
            for name in order:
                fn = variants[name][case]
                start = time.perf_counter()
                for _ in range(args.calls):
                    fn()
                times[case, name].append((time.perf_counter() - start) / args.calls * 1e6)
    for case in variants["new"]:
        meds = {name: statistics.median(times[case, name]) for name in variants}
        row = "  ".join(f"{name} {med:8.1f} us" for name, med in meds.items())
        ratio = f"  new/old {meds['new'] / meds['old']:.3f}" if "old" in meds else ""
        print(f"{case:28s} {row}{ratio}")


if __name__ == "__main__":
    main()

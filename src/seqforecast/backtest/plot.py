"""``backtest.png``: forecasts against actuals over the test span, and MASE per model."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from seqforecast.backtest.table import Bounds
from seqforecast.outputs import atomic_open
from seqforecast.scores import level_name


def plot_backtest(
    path: str | Path,
    times: np.ndarray,
    actual: np.ndarray,
    forecasts: dict[str, np.ndarray],
    bounds: Bounds,
    mase: dict[str, float],
) -> Path:
    """Write the figure to ``path``.

    ``times [n, h]`` and ``actual [n, h]`` are each origin's target times and values,
    ``forecasts`` each model's ``[n, h]``; ``bounds`` are the first model's intervals. One
    panel per lead time drawn (1 step ahead and, when ``h > 1``, ``h`` steps ahead): the
    actuals, every model's forecasts of that lead, the first model's widest band; then
    a bar per model of its overall MASE.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    h = actual.shape[1]
    leads = [0] if h == 1 else [0, h - 1]
    fig, axes = plt.subplots(len(leads) + 1, 1, figsize=(11, 3.2 * (len(leads) + 1)))
    first = next(iter(forecasts))
    for ax, j in zip(axes, leads, strict=False):
        t = times[:, j]
        if bounds:
            level = max(bounds)
            lo, hi = bounds[level]
            ax.fill_between(
                t, lo[:, j], hi[:, j], alpha=0.2, label=f"{first} {level_name(level)} %"
            )
        ax.plot(t, actual[:, j], "k-", lw=1.5, label="actual")
        for name, f in forecasts.items():
            ax.plot(t, f[:, j], lw=1, label=name)
        ax.set_title(f"{j + 1} step{'s' if j else ''} ahead, from each origin")
        ax.legend(fontsize=8, ncol=4)
    names = list(mase)
    ax = axes[-1]
    ax.bar(names, [mase[n] for n in names], color=["C0", *["C7"] * (len(names) - 1)])
    ax.axhline(1.0, color="k", lw=0.8, ls="--")
    ax.set_ylabel("MASE (overall)")
    ax.set_title("MASE per model (1 = in-sample seasonal-naive error of the training rows)")
    fig.tight_layout()
    with atomic_open(path) as f:  # a kill never leaves half a PNG
        fig.savefig(f, dpi=100, format="png")
    plt.close(fig)
    return Path(path)

"""Figures in the style of the book's helpers: forecasts and learning curves.

matplotlib is imported inside each function (Agg backend), so importing the
package stays light.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from seqforecast.outputs import atomic_open


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(plt, fig, path: str | Path) -> Path:
    """Lay out, write the PNG (parent folders created) and free the figure."""
    fig.tight_layout()
    path = Path(path)
    with atomic_open(path) as f:  # a kill never leaves half a PNG
        fig.savefig(f, dpi=100, format="png")
    plt.close(fig)
    return path


def plot_forecasts(
    history: np.ndarray,
    forecast: np.ndarray,
    path: str | Path,
    actual: np.ndarray | None = None,
    n_series: int = 3,
    title: str | None = None,
    bands: dict[float, tuple[np.ndarray, np.ndarray]] | None = None,
) -> Path:
    """The book's ``plot_multiple_forecasts``, one panel per series.

    ``history [S, T]`` is drawn as a line (``".-"``), ``actual [S, ahead]`` as blue
    points (``"bo-"``) and ``forecast [S, ahead]`` as red crosses (``"rx-"``) after it;
    ``bands`` ``{level: (lo, hi)}`` (each ``[S, ahead]``) as shaded intervals, the wider
    levels lighter. Saves a PNG to ``path`` and returns it.
    """
    plt = _pyplot()
    n = min(n_series, len(history))
    n_steps, ahead = history.shape[1], forecast.shape[1]
    fig, axes = plt.subplots(1, n, figsize=(4 * n, 3.5), sharey=True, squeeze=False)
    for i, ax in enumerate(axes[0]):
        ax.plot(np.arange(n_steps), history[i], ".-", label="History")
        steps = np.arange(n_steps, n_steps + ahead)
        for j, (level, (lo, hi)) in enumerate(sorted((bands or {}).items(), reverse=True)):
            if not (np.isfinite(lo[i]).all() and np.isfinite(hi[i]).all()):
                continue  # too few calibration windows for this level: no finite band
            alpha = 0.15 + 0.2 * j / max(1, len(bands) - 1)  # the narrowest band darkest
            ax.fill_between(
                steps, lo[i], hi[i], color="red", alpha=alpha, lw=0, label=f"{level:g} % interval"
            )
        if actual is not None:
            ax.plot(steps, actual[i], "bo-", label="Actual")
        ax.plot(steps, forecast[i], "rx-", markersize=10, label="Forecast")
        ax.set_xlim(0, n_steps + ahead)
        ax.grid(True)
        ax.set_xlabel("$t$")
        ax.set_title(f"series {i}")
    axes[0][0].set_ylabel("$x(t)$")
    axes[0][0].legend(loc="upper left", fontsize=8)
    if title:
        fig.suptitle(title)
    return _save(plt, fig, path)


def plot_learning_curves(
    train_loss: Sequence[float],
    val_loss: Sequence[float],
    path: str | Path,
    title: str | None = None,
) -> Path:
    """The book's ``plot_learning_curves``: epoch-mean training loss half an epoch back."""
    plt = _pyplot()
    from matplotlib.ticker import MaxNLocator

    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(np.arange(len(train_loss)) + 0.5, train_loss, "b.-", label="Training loss")
    ax.plot(np.arange(len(val_loss)) + 1, val_loss, "r.-", label="Validation loss")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("Epochs")
    ax.set_ylabel("Loss")
    ax.grid(True)
    ax.legend()
    if title:
        ax.set_title(title)
    return _save(plt, fig, path)

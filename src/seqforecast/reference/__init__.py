"""The book's published validation figures (``book_ch15.csv``), with their provenance.

Each row is one notebook output of ``ageron/handson-ml2``
``15_processing_sequences_using_rnns_and_cnns.ipynb``: the experiment (our reproduction
name), the value, the Keras metric (``val_mse``: evaluate / ``val_loss``;
``val_last_time_step_mse``: the seq2seq last-step metric), the notebook run (commit),
the 0-based notebook cell and where the figure was read (an evaluate cell or the
epoch-20 training log).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from importlib import resources


@dataclass(frozen=True)
class BookFigure:
    experiment: str
    value: float
    metric: str
    notebook_run: str
    cell: int
    source: str


def book_figures() -> list[BookFigure]:
    """Every published figure, in file order."""
    text = resources.files(__package__).joinpath("book_ch15.csv").read_text()
    return [
        BookFigure(**{**row, "value": float(row["value"]), "cell": int(row["cell"])})
        for row in csv.DictReader(text.splitlines())
    ]


def book_values() -> dict[str, list[float]]:
    """Published values per experiment: ``{"lstm": [0.00856, 0.00855, 0.00852], ...}``."""
    values: dict[str, list[float]] = {}
    for fig in book_figures():
        values.setdefault(fig.experiment, []).append(fig.value)
    return values


__all__ = ["BookFigure", "book_figures", "book_values"]

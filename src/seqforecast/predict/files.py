"""Prediction's files: the windows read (``.npy`` streamed, ``.csv``) and the outputs written.

Every output goes through :func:`seqforecast.outputs.atomic_open`, so a killed run leaves
each file whole or absent.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from omegaconf import DictConfig

from seqforecast.errors import ConfigError, InputError
from seqforecast.outputs import atomic_open
from seqforecast.plots import plot_forecasts
from seqforecast.scores import level_name

if TYPE_CHECKING:  # pandas is imported where a table is read
    import pandas as pd

INPUT_SUFFIXES = (".npy", ".csv")
OUTPUT_NAMES = ("predictions", "intervals", "metrics", "errors", "plot")


class NpyRows:
    """Rows of a ``.npy`` file read batch by batch: only the rows asked for are in memory.

    ``rows[lo:hi]`` reads those rows from disk (C order) or from a memory map
    (Fortran order). ``shape``/``ndim``/``len`` come from the header alone.
    """

    def __init__(self, path: Path) -> None:
        try:
            mm = np.load(path, mmap_mode="r", allow_pickle=False)
        except (ValueError, OSError, EOFError) as err:
            reason = str(err).splitlines()[0][:120]
            raise InputError(
                f"input {path} is not a readable .npy array of numbers ({reason})"
            ) from None
        self.path, self.shape, self.dtype, self.ndim = path, mm.shape, mm.dtype, mm.ndim
        self.offset = mm.offset
        self._fortran = None if mm.ndim < 2 or mm.flags.c_contiguous else mm

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, rows: slice) -> np.ndarray:
        lo, hi, _ = rows.indices(len(self))
        if self._fortran is not None:
            return np.array(self._fortran[lo:hi])
        row = int(np.prod(self.shape[1:]))
        flat = np.fromfile(
            self.path,
            dtype=self.dtype,
            count=(hi - lo) * row,
            offset=self.offset + lo * row * self.dtype.itemsize,
        )
        return flat.reshape(hi - lo, *self.shape[1:])


def read_input(path: str | Path) -> np.ndarray | NpyRows:
    """Windows to forecast from ``.npy`` (streamed) or ``.csv`` (one series per row)."""
    path = Path(path)
    if path.suffix not in INPUT_SUFFIXES:
        raise InputError(f"input {path} must be one of {list(INPUT_SUFFIXES)} files")
    if not path.is_file():
        raise InputError(f"input not found: {path}")
    if path.suffix == ".npy":
        return NpyRows(path)
    if not path.read_text(errors="replace").strip():
        raise InputError(f"input {path} is empty; expected one series per row")
    try:
        x = np.loadtxt(path, delimiter=",", dtype=np.float32, ndmin=2)
    except ValueError as err:
        reason = str(err).splitlines()[0][:120]
        raise InputError(
            f"input {path} is not a CSV of numbers, one series per row, comma-separated ({reason})"
        ) from None
    return x


def check_names(names: DictConfig) -> dict[str, str]:
    """The output file names (``cfg.names``), each a plain name inside the run folder."""
    out = {}
    for key in OUTPUT_NAMES:
        value = names.get(key)
        if not isinstance(value, str) or not value or Path(value).name != value:
            raise ConfigError(
                f"names.{key} must be a file name inside the run folder, got {value!r}"
            )
        out[key] = value
    return out


def write_array(path: Path, array: np.ndarray) -> None:
    """``array`` as a ``.npy`` file."""
    with atomic_open(path) as f:
        np.save(f, array)


def write_predictions(
    out: Path, name: str, predictions: np.ndarray, table: pd.DataFrame | None = None
) -> None:
    """``<name>.npy`` ``[N, ahead]`` and ``<name>.csv``: one series per row, or ``table``.

    Values are written with ``%.9g``, which keeps every float32 bit.
    """
    write_array(out / f"{name}.npy", predictions)
    with atomic_open(out / f"{name}.csv") as f:
        if table is None:
            np.savetxt(f, predictions, delimiter=",", fmt="%.9g")
        else:
            f.write(table.to_csv(index=False, float_format="%.9g").encode())


def write_intervals(
    out: Path, name: str, predictions: np.ndarray, bounds: np.ndarray, levels: list[float]
) -> None:
    """``<name>.npy``: the bounds ``[N, ahead, L, 2]`` (lo, hi; levels in the order of
    ``levels``) and ``<name>.csv``: one row per series and step ahead, ``series, step,
    forecast, lo-80, hi-80, ...`` (``%.9g``)."""
    write_array(out / f"{name}.npy", bounds)
    n, ahead = predictions.shape
    columns = {
        "series": np.repeat(np.arange(n), ahead),
        "step": np.tile(np.arange(1, ahead + 1), n),
        "forecast": predictions.reshape(-1),
    }
    for i, level in enumerate(levels):
        columns[f"lo-{level_name(level)}"] = bounds[:, :, i, 0].reshape(-1)
        columns[f"hi-{level_name(level)}"] = bounds[:, :, i, 1].reshape(-1)
    with atomic_open(out / f"{name}.csv") as f:
        np.savetxt(
            f,
            np.column_stack(list(columns.values())),
            delimiter=",",
            fmt="%.9g",
            header=",".join(columns),
            comments="",
        )


def write_figure(
    path: Path,
    windows: np.ndarray | NpyRows,
    predictions: np.ndarray,
    actual: np.ndarray | None,
    n_series: int,
    title: str,
    bounds: np.ndarray | None = None,
    levels: list[float] | None = None,
) -> None:
    """The first ``n_series`` windows ``[N, T(, F)]`` (their first feature), forecasts,
    targets (when known) and interval bands (``bounds [N, ahead, L, 2]`` at ``levels``),
    one panel each."""
    history = np.asarray(windows[:n_series], dtype=np.float32)
    history = history[..., 0] if history.ndim == 3 else history  # [S, T]
    bands = {}
    if bounds is not None:
        bands = {
            lv: (bounds[:n_series, :, i, 0], bounds[:n_series, :, i, 1])
            for i, lv in enumerate(levels or [])
        }
    plot_forecasts(
        history,
        predictions[:n_series],
        path,
        actual=None if actual is None else actual[:n_series],
        n_series=n_series,
        title=title,
        bands=bands,
    )

"""The data a checkpoint was trained on, from the settings stored in it.

``train.py`` checkpoints keep their DataModule's settings (``datamodule_hyper_parameters``).
Generated series are a pure seeded function of them, so the training splits are rebuilt
exactly (:func:`rebuild_series`); a model trained on a file (``data=csv``) reads the last rows
of a table with the training columns instead (:func:`read_table`).
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import numpy as np

from seqforecast.data.files import FileDataModule
from seqforecast.data.sine import SineDataModule
from seqforecast.data.splits import STAGES
from seqforecast.data.table import Table, load_table, read_frame
from seqforecast.errors import ConfigError, InputError, SeqforecastError
from seqforecast.module import ForecastModule

# Data settings that checkpoints of earlier versions carry and that no longer mean anything:
# ``batches_per_call`` grouped batches for the optimizer loop and never changed the series.
LEGACY_DATA_SETTINGS = ("batches_per_call",)
# The settings SineDataModule takes: what a rebuilt generated split may be given.
SINE_SETTINGS = tuple(
    name for name in inspect.signature(SineDataModule.__init__).parameters if name != "self"
)
FILE_NEEDS_INPUT = (
    "this model was trained on the file {path}; pass input=<file with the same columns> "
    "to forecast past its last row"
)


def check_data_settings(data: Any, module: ForecastModule, path: str | Path) -> dict | None:
    """The checkpoint's data settings (``datamodule_hyper_parameters``) fit its model.

    Generated series are rebuilt from them, so their window must be the model's (other
    sizes, ``n_series``, are bounded by the memory check when the data is set up).
    """
    if not isinstance(data, dict):
        return None
    for key in ("n_steps", "horizon"):
        if key in data and data[key] != module.hparams[key]:
            raise InputError(
                f"checkpoint {path}: its data settings say {key}={data[key]!r} but its "
                f"model's hyper_parameters say {key}={module.hparams[key]!r}; they must agree"
            )
    return dict(data)


def rebuild_series(
    data: dict[str, Any], split: str, n_steps: int, ahead: int, overrides: dict[str, Any]
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """One split of the generated series described by the stored settings ``data``.

    ``overrides`` replace stored settings; legacy ones (:data:`LEGACY_DATA_SETTINGS`) are
    dropped, any other unknown one is refused. When ``ahead`` exceeds the data's horizon the
    series are regenerated with ``horizon=ahead, target="next"`` so that every forecast step
    has a target. Returns ``x [N, n_steps, 1]``, the targets ``y [N, k]`` (next) or
    ``[N, n_steps, k]`` (seq2seq) and the settings used.
    """
    if split not in STAGES:
        raise ConfigError(f"split must be one of {list(STAGES)}, got {split!r}")
    unknown = sorted(set(map(str, overrides)) - set(SINE_SETTINGS))
    if unknown:
        raise ConfigError(
            f"data overrides {unknown} are not settings of SineDataModule; expected some of "
            f"{list(SINE_SETTINGS)}"
        )
    stored = {k: v for k, v in data.items() if k not in LEGACY_DATA_SETTINGS}
    unknown = sorted(set(map(str, stored)) - set(SINE_SETTINGS))
    if unknown:
        raise InputError(
            f"the checkpoint's data settings are not SineDataModule's: unknown keys {unknown}; "
            f"expected only {list(SINE_SETTINGS)}"
        )
    settings = {**stored, **overrides}
    if settings.get("n_steps", n_steps) != n_steps:
        raise ConfigError(
            f"data.n_steps={settings['n_steps']!r} must equal the model's n_steps="
            f"{n_steps}: its windows are the model's input"
        )
    if ahead > settings.get("horizon", 0):
        settings.update(horizon=ahead, target="next")
    try:
        # The settings' sizes are checked (memory included) before any series is made.
        x, y = SineDataModule(**settings).arrays(split)
    except TypeError as err:
        raise InputError(
            f"the checkpoint's data settings are not SineDataModule's: {err}"
        ) from None
    except SeqforecastError as err:
        given = sorted(k for k in overrides if overrides[k] is not None)
        origin = f"overridden: {given}" if given else "as stored"
        raise type(err)(f"rebuilding the checkpoint's generated data ({origin}): {err}") from None
    return x, y, settings


def datamodule_of(data: dict[str, Any], n_steps: int, horizon: int) -> Any:
    """The DataModule of the stored settings ``data`` (generated or file data), with windows
    of ``n_steps`` rows and ``horizon`` values after each (``next`` targets): the training
    rows and splits of a checkpoint, seen by a model of another window (an ensemble).

    Raises:
        InputError: The settings are not a DataModule's, or its file cannot be read.
    """
    file = "target_column" in data
    cls = FileDataModule if file else SineDataModule
    accepted = set(inspect.signature(cls.__init__).parameters) - {"self"}
    settings = {k: v for k, v in data.items() if k in accepted}
    settings.update(n_steps=n_steps, horizon=horizon)
    if file and not settings.get("id"):  # stored as [] for one series
        settings["id"] = None
    settings.update(
        {"target": data["target_column"], "target_kind": "next"} if file else {"target": "next"}
    )
    try:
        module = cls(**settings)
        module.setup()
    except (TypeError, OSError) as err:
        raise InputError(f"the stored data settings cannot be rebuilt: {err}") from None
    return module


def read_table(path: str | Path, data: dict[str, Any], n_steps: int) -> Table:
    """The training columns of a file like the training file (target first), with at least
    ``n_steps`` usable rows; ``data`` are the stored settings of the file DataModule."""
    columns = [data["target_column"], *data.get("inputs", [])]
    trained = [*([data["time"]] if data.get("time") else []), *columns]
    frame = read_frame(path)
    have = [str(c) for c in frame.columns]
    if not set(trained) <= set(have):
        raise InputError(
            f"input {path} has columns {have}, but this model was trained on columns "
            f"{trained} (missing {[c for c in trained if c not in have]})"
        )
    table = load_table(path, columns, data.get("time"), data.get("fill"), frame=frame)
    if len(table.values) < n_steps:
        raise InputError(
            f"input {path} has {len(table.values)} usable rows; the model needs the last "
            f"n_steps = {n_steps}"
        )
    return table

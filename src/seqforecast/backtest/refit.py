"""``refit=N``: retrain the checkpoint's run on the expanding history every ``N`` origins.

The run's own ``config.yaml`` (beside its ``checkpoints/`` folder) is loaded, every path
under the old run folder is moved under ``<backtest>/refits/origin-<i>/`` (several
checkpoints: ``refits/<name>/origin-<i>/``), and its data
becomes that folder's ``history.csv``: the training columns of the rows up to origin ``i``,
nothing after it. :func:`seqforecast.train.train` then fits it as any run. The history is
split by counts ``[rows - V, V - W, W]``: ``V`` is the val size of the original split, so
at the first test origin the training rows are the original ones; the newest ``V`` rows
select the checkpoint (``V - W``) and form the test split the data module requires
(``W = n_steps + horizon``, one window).
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf

from seqforecast.backtest.neural import model_forecasts
from seqforecast.data.table import Table
from seqforecast.errors import ConfigError, InputError
from seqforecast.outputs import atomic_write_text
from seqforecast.predict.forecaster import Forecaster, load_checkpoint


def run_config(ckpt_path: str | Path) -> DictConfig:
    """The training run's resolved ``config.yaml``: ``<run>/checkpoints/x.ckpt`` -> ``<run>``."""
    path = Path(ckpt_path).resolve().parent.parent / "config.yaml"
    if not path.is_file():
        raise InputError(
            f"refit retrains the run of {ckpt_path} from its config, but {path} does not exist; "
            "use refit=never or a checkpoint inside its run folder"
        )
    cfg = OmegaConf.load(path)
    if not isinstance(cfg, DictConfig) or "data" not in cfg or "output_dir" not in cfg:
        raise InputError(f"{path} is not a training run's config (no data or output_dir)")
    return cfg


def refit_split(rows: int, val_rows: int, window: int) -> list[int]:
    """Row counts ``[train, val, test]`` of a history of ``rows`` rows (see the module doc)."""
    split = [rows - val_rows, val_rows - window, window]
    if min(split[:2]) < window:
        raise ConfigError(
            f"refit needs a val split of at least 2 x (n_steps + horizon) = {2 * window} rows "
            f"(its own val and the one-window test split of each retraining) and {window} "
            f"training rows; the file's val split has {val_rows} rows and the history "
            f"{rows - val_rows} before it. Use refit=never or a longer val split"
        )
    return split


def _moved(value: Any, old: str, new: str) -> Any:
    """Strings naming ``old`` or a path under it now name the same path under ``new``."""
    if isinstance(value, dict):
        return {k: _moved(v, old, new) for k, v in value.items()}
    if isinstance(value, list):
        return [_moved(v, old, new) for v in value]
    if isinstance(value, str) and (value == old or value.startswith(old.rstrip("/") + "/")):
        return new + value[len(old.rstrip("/")) :]
    return value


def history_csv(table: Table, data: dict[str, Any], rows: int, path: Path) -> Path:
    """The first ``rows`` rows of the training columns (time first, when the model has one)."""
    frame = pd.DataFrame(table.values[:rows], columns=table.columns)
    if data.get("time"):
        frame.insert(0, data["time"], table.times.iloc[:rows].to_numpy())
    buf = io.StringIO()
    frame.to_csv(buf, index=False, float_format="%.9g")  # float32 round-trips
    return atomic_write_text(path, buf.getvalue())


def refit_forecaster(
    run_cfg: DictConfig,
    table: Table,
    data: dict[str, Any],
    rows: int,
    split: list[int],
    folder: Path,
    device: str,
    layers: str,
) -> Forecaster:
    """Train the run again on the first ``rows`` rows of ``table`` in ``folder``; its best
    checkpoint as a :class:`Forecaster`."""
    from seqforecast.train import train  # the Lightning training stack, only when refitting

    folder = folder.resolve()
    csv = history_csv(table, data, rows, folder / "history.csv")
    config = OmegaConf.to_container(run_cfg, resolve=True)
    config = _moved(config, str(run_cfg.output_dir), str(folder))
    config.update(output_dir=str(folder), resume=None)
    config["data"].update(path=str(csv), split=split)
    metrics = train(OmegaConf.create(config))
    if not metrics.get("best_ckpt"):
        raise InputError(f"the refit in {folder} wrote no checkpoint (trainer.fast_dev_run?)")
    return load_checkpoint(metrics["best_ckpt"], device, layers)


def fit_rows(cutoffs: np.ndarray, refit: str | int, train_rows: int) -> np.ndarray:
    """Rows each origin's fitted parameters come from ``[n]``: the training rows
    (``never``), else the history up to the first origin of its group of ``refit``."""
    if refit == "never":
        return np.full(len(cutoffs), train_rows)
    return cutoffs[(np.arange(len(cutoffs)) // refit) * refit] + 1


def refit_forecasts(
    cfg: DictConfig,
    ckpt_path: str,
    folder: Path,
    forecaster: Forecaster,
    table: Table,
    cutoffs: np.ndarray,
    rows: np.ndarray,
    horizon: int,
    val_rows: int,
) -> np.ndarray:
    """``[n, horizon]``: the run of ``ckpt_path`` retrained on the first ``rows[i]`` rows of
    ``table`` at the first origin of each group, forecasting the group's origins. Each
    retraining runs in ``<folder>/origin-<i>``; ``cfg``: the backtest's device and layers."""
    run_cfg = run_config(ckpt_path)
    window = forecaster.n_steps + forecaster.horizon
    out = np.empty((len(cutoffs), horizon))
    for end in np.unique(rows):
        group = rows == end
        split = refit_split(int(end), val_rows, window)
        model = refit_forecaster(
            run_cfg,
            table,
            forecaster.data,
            int(end),
            split,
            folder / f"origin-{int(np.argmax(group)):04d}",
            cfg.device,
            cfg.get("layers", "fast"),
        )
        out[group] = model_forecasts(model, table.values, cutoffs[group], horizon, cfg.batch_size)
    return out

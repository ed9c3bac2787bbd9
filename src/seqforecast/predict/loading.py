"""``load_forecaster(path)``: what ``predict.py``, ``backtest.py``, the service and the Python
API load: a checkpoint's :class:`~seqforecast.predict.forecaster.Forecaster`, or an ensemble
folder's :class:`~seqforecast.ensemble.EnsembleForecaster` of its members, each loaded so."""

from __future__ import annotations

from pathlib import Path

from seqforecast.ensemble import EnsembleForecaster, is_ensemble, load_ensemble
from seqforecast.predict.forecaster import Forecaster, load_checkpoint


def load_forecaster(
    path: str | Path, device: str = "auto", layers: str = "fast"
) -> Forecaster | EnsembleForecaster:
    """The forecaster of a ``train.py`` checkpoint or of an ensemble folder, on ``device``.

    The checkpoint (each member's) is read with ``weights_only=True`` onto the CPU; no device
    or accelerator setting is taken from it. ``layers`` (fast|plain) picks the layer
    implementation, as in training (:func:`seqforecast.fast.use_layers`).

    Args:
        path: A ``.ckpt`` file written by ``train.py``, or an ensemble folder (its
            ``ensemble.json``; docs/ensembles.md).
        device: ``auto`` (CUDA when present), ``cpu`` or ``cuda``.
        layers: ``fast`` (fused layers) or ``plain`` (the torch modules); same weights.

    Returns:
        The model in eval mode on ``device``, with the checkpoint's data settings, scaler
        and interval calibration; or the ensemble of such models.

    Raises:
        ConfigError: ``device`` or ``layers`` is not allowed (``cuda`` without a GPU).
        InputError: A file is missing, unsafe, damaged or not a seqforecast checkpoint, or
            the ensemble's manifest or members do not fit.
    """
    if is_ensemble(path):
        return load_ensemble(path, lambda member: load_checkpoint(member, device, layers))
    return load_checkpoint(path, device, layers)

"""Prediction: load a checkpoint (one safe loader), forecast, read inputs and write outputs.

``load_forecaster(path)`` gives a :class:`Forecaster` (numpy in, numpy out) without Hydra;
``predict(cfg)`` is the task function behind ``scripts/predict.py``.
"""

from seqforecast.predict.checkpoint import load_module, read_checkpoint
from seqforecast.predict.task import (
    Forecaster,
    NpyRows,
    format_summary,
    load_forecaster,
    predict,
    read_input,
)

__all__ = [
    "Forecaster",
    "NpyRows",
    "format_summary",
    "load_forecaster",
    "load_module",
    "predict",
    "read_checkpoint",
    "read_input",
]

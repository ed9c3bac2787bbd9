"""Prediction: load a checkpoint (one safe loader), forecast, read inputs and write outputs.

- :mod:`.checkpoint`: read a checkpoint with ``weights_only=True`` and build its module.
- :mod:`.forecaster`: :class:`Forecaster`, the torch forward pass under the numpy core
  (:mod:`seqforecast.core`: direct and iterative forecasts, intervals, scaling).
- :mod:`.loading`: ``load_forecaster``, a checkpoint's or an ensemble folder's forecaster.
- :mod:`.tables`: forecasts past the end of each series of a table like the training file.
- :mod:`.training_data`: the data a checkpoint was trained on, rebuilt from its settings.
- :mod:`.files`: input windows read, predictions, errors and the figure written.
- :mod:`.task`: ``predict(cfg)``, the task function behind ``scripts/predict.py``.

``load_forecaster(path)`` gives a :class:`Forecaster` (an ensemble folder: an
:class:`~seqforecast.ensemble.EnsembleForecaster`) without Hydra; ``load_module(path)``
gives the checkpoint's ``ForecastModule``.
"""

from seqforecast.predict.checkpoint import load_module, read_checkpoint
from seqforecast.predict.files import NpyRows, read_input
from seqforecast.predict.forecaster import Forecaster, load_checkpoint
from seqforecast.predict.loading import load_forecaster
from seqforecast.predict.task import format_summary, predict

__all__ = [
    "Forecaster",
    "NpyRows",
    "format_summary",
    "load_checkpoint",
    "load_forecaster",
    "load_module",
    "predict",
    "read_checkpoint",
    "read_input",
]

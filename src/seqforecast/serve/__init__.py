"""An HTTP forecasting service for a checkpoint (LitServe): ``python scripts/serve.py``.

- :mod:`.requests`: the ``POST /predict`` body, :class:`~.requests.PredictRequest` (its
  published schema), checked into a :class:`~.requests.Job`.
- :mod:`.api`: :class:`~.api.ForecastAPI`, batched forecasts from the checkpoint.
- :mod:`.app`: the body limit, one-line errors and ``GET /health``.
- :mod:`.task`: ``serve(cfg)``, the task behind ``scripts/serve.py``.

The request and answer schema is in ``docs/serve.md``.
"""

from seqforecast.serve.requests import Job, PredictRequest, model_facts, parse_request

__all__ = ["Job", "PredictRequest", "model_facts", "parse_request"]

"""Rolling-origin backtests of file-trained checkpoints (one series or a panel) against baselines.

- :mod:`.origins`: which origins (cutoff rows) a span holds; their windows by index arithmetic.
- :mod:`.baselines`: naive, seasonal naive, drift (numpy, all origins at once), the statistical
  models fitted once and run forward, and the registry.
- :mod:`.statistical`: statsforecast's AutoARIMA and AutoETS (the ``stats`` extra), and what a
  fit chose.
- :mod:`.neural`: the checkpoint's forecasts from every origin in one batched pass.
- :mod:`.refit`: ``refit=N``, retraining the run on the expanding history.
- :mod:`.table`: conformal intervals, the long table (statsforecast's ``cross_validation``
  format), its scores by ``utilsforecast.evaluation.evaluate``.
- :mod:`.plot`: ``backtest.png``.
- :mod:`.task`: ``backtest(cfg)``, the task behind ``scripts/backtest.py``.
"""

"""Rolling-origin backtests of a file-trained checkpoint against baselines.

- :mod:`.origins`: which origins (cutoff rows) a span holds; their windows by index arithmetic.
- :mod:`.baselines`: naive, seasonal naive, drift (numpy, all origins at once) and the registry.
- :mod:`.statistical`: statsforecast's AutoARIMA and AutoETS (the ``stats`` extra).
- :mod:`.neural`: the checkpoint's forecasts from every origin in one batched pass.
- :mod:`.refit`: ``refit=N``, retraining the run on the expanding history.
- :mod:`.table`: conformal intervals, the long table, the metrics.
- :mod:`.plot`: ``backtest.png``.
- :mod:`.task`: ``backtest(cfg)``, the task behind ``scripts/backtest.py``.
"""

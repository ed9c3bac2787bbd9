"""seqforecast: the sequence-forecasting chapter of Hands-On ML (ch. 15) in PyTorch Lightning."""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"
__all__ = ["Forecaster", "load_forecaster", "load_module"]


def __getattr__(name: str) -> Any:
    """Import the prediction API on first use, so ``import seqforecast`` stays light."""
    if name in __all__:
        return getattr(importlib.import_module("seqforecast.predict"), name)
    raise AttributeError(f"module 'seqforecast' has no attribute {name!r}")

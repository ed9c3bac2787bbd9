"""Series generators, windowing and DataModules.

The names below are imported on first use, so that the light modules of this package
(``windows``, ``generate``, ``scaling``, ``table``) load without Lightning, as the models do.
"""

from __future__ import annotations

import importlib
from typing import Any

_WHERE = {
    "SineDataModule": "seqforecast.data.sine",
    "make_windows": "seqforecast.data.windows",
    "two_sine_series": "seqforecast.data.generate",
}
__all__ = ["SineDataModule", "make_windows", "two_sine_series"]


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'seqforecast.data' has no attribute {name!r}")

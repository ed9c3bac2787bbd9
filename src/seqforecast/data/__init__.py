"""Series generators, windowing and DataModules."""

from seqforecast.data.generate import two_sine_series
from seqforecast.data.sine import SineDataModule
from seqforecast.data.windows import make_windows

__all__ = ["SineDataModule", "make_windows", "two_sine_series"]

"""seqforecast: the sequence-forecasting chapter of Hands-On ML (ch. 15) in PyTorch Lightning."""

__version__ = "0.1.0"

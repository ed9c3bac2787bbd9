"""The names a config may choose from, at the ground of the package: it imports nothing of it.

Both the rules (:mod:`seqforecast.rules`) and the modules that own each choice's behaviour
import these tuples from here and re-export them (``from seqforecast.models import NETS``
still works), so a check never imports torch or Lightning and no module imports back up.
Each module's own table (``models.STACKS``, ``fast.FAST``, ``backtest.baselines``) covers
exactly its names; ``tests/test_config.py`` checks that they match.
"""

from __future__ import annotations

TARGETS = ("next", "seq2seq")  # seqforecast.data.windows
# Longest window accepted (the rule of ``n_steps``). Building a model walks its steps in
# Python (one list entry per step), so an absurd n_steps read from a checkpoint must stop
# before that, not after.
MAX_STEPS = 1_000_000
SCALINGS = ("standard", "minmax", "none")  # seqforecast.data.scaling
FILLS = ("ffill", "interpolate", "drop")  # seqforecast.data.table
TRANSFORMS = ("none", "log", "boxcox")  # seqforecast.data.transforms
LAMBDA_RANGE = (-1.0, 2.0)  # the search range of the Box-Cox maximum-likelihood lambda
# Calendar feature -> (pandas ``.dt`` attribute, period); seqforecast.data.panel.
CALENDAR = {
    "dayofweek": ("dayofweek", 7),
    "dayofmonth": ("day", 31),
    "dayofyear": ("dayofyear", 366),
    "weekofyear": ("week", 53),
    "month": ("month", 12),
    "quarter": ("quarter", 4),
    "hour": ("hour", 24),
    "minute": ("minute", 60),
}
# seqforecast.models: the naive and linear baselines, recurrent stacks, convolutional nets
CONV_NETS = ("conv_gru", "wavenet", "wavenet_gated")
NETS = ("naive", "linear", "rnn", "lstm", "gru", "ln_rnn", "rnn_bn", *CONV_NETS)
HEADS = ("linear", "per_step", "none")  # seqforecast.models
INITS = ("keras", "torch")  # seqforecast.models.init
WINDOW_NORMS = ("none", "last", "revin", "seasonal")  # seqforecast.models.norm
LAYERS = ("fast", "plain")  # seqforecast.fast
LOSSES = ("mse", "quantile", "gaussian")  # seqforecast.losses
INTERVALS = ("conformal", "model", "cqr")  # seqforecast.intervals
STATISTICAL = ("auto_arima", "auto_ets")  # seqforecast.backtest.statistical
BASELINES = ("naive", "seasonal_naive", "drift", *STATISTICAL)  # seqforecast.backtest.baselines

"""How much memory a run may take (``max_memory``), and one estimate of a run's peak.

The budget is ``max_memory``: a number of bytes or a size such as ``4GB`` / ``512MB`` /
``2GiB``; ``null`` (the default) is :data:`DEFAULT_FRACTION` of the memory the host has
available when the check runs (Linux's ``MemAvailable``), so that one run leaves room for
the rest of the machine. ``train`` and ``predict`` set it for their whole run
(:func:`limit`); every memory check (:func:`check_memory`: the data's windows, the
forecasts, the interval bounds, a run's estimate) compares with it.

:func:`estimate_run` adds up a training run's peak from its DataModule and its network
(built on the ``meta`` device, shapes only): the process as it stands, the libraries a run
still loads, the data (:meth:`~seqforecast.data.splits.SplitDataModule.memory_bytes`), the
weights with their gradients and Adam's two moments, and the activations of the larger of a
training batch (kept for backward) and an evaluation batch. :func:`check_run` refuses it,
before the data or the network is made, when it exceeds the budget. docs/configuration.md
compares it with the measured peaks.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from seqforecast.errors import ConfigError

# Of the available memory, when max_memory is null: Hydra's joblib launcher runs two jobs
# side by side, and each must leave room for the other and for the rest of the machine.
DEFAULT_FRACTION = 0.25
UNITS = {"": 1, "b": 1} | {f"{p}b": 1000**i for i, p in enumerate("kmgt", 1)}
UNITS |= {f"{p}ib": 1024**i for i, p in enumerate("kmgt", 1)}  # kib = 2**10 ... tib = 2**40
SIZE = re.compile(r"^\s*(\d+(?:\.\d*)?)\s*([a-z]*)\s*$", re.IGNORECASE)
ALLOWED = "null, a number of bytes > 0, or a size such as 4GB, 512MB or 2GiB"

FLOAT32 = 4
# What a training run loads after the check and keeps: Lightning's loops and logger, the
# compiled kernels of the fast layers, the allocator's slack (docs/configuration.md).
RUNTIME_BYTES = 150 * 10**6
# Per value of a layer's output in a training batch: the output, what autograd saves for
# backward, its gradient, and the temporaries of the update.
TRAIN_COPIES = 4
# The settings that size each network (recurrent nets: model.hidden).
NET_KEYS = {
    "naive": (),
    "linear": ("n_steps",),
    "conv_gru": ("model.filters", "model.hidden"),
    "wavenet": ("model.filters",),
    "wavenet_gated": ("model.filters",),
}
GATES = {"RNN_TANH": 1, "RNN_RELU": 1, "GRU": 3, "LSTM": 4}

log = logging.getLogger(__name__)
_limit: ContextVar[int | None] = ContextVar("max_memory", default=None)


def parse_size(value: Any) -> int | None:
    """``max_memory`` in bytes (``None`` for null): ``4GB`` -> 4e9, ``2GiB`` -> 2**31."""
    if value is None:
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        if value > 0 and value == value and value != float("inf"):
            return int(value)
    elif isinstance(value, str):
        found = SIZE.match(value)
        if found and found.group(2).lower() in UNITS:
            size = int(float(found.group(1)) * UNITS[found.group(2).lower()])
            if size > 0:
                return size
    raise ConfigError(f"max_memory={value!r} is not allowed: expected {ALLOWED}")


def is_size(value: Any) -> bool:
    """Whether ``value`` is an allowed ``max_memory`` (the rule in :mod:`seqforecast.rules`)."""
    try:
        parse_size(value)
    except ConfigError:
        return False
    return True


@contextmanager
def limit(max_memory: Any) -> Iterator[None]:
    """Within the block, memory checks compare with ``max_memory`` (null: the default)."""
    token = _limit.set(parse_size(max_memory))
    try:
        yield
    finally:
        _limit.reset(token)


def available_memory() -> int | None:
    """Bytes of memory available to a new allocation, or ``None`` when the host won't say.

    Linux's ``MemAvailable`` (free plus reclaimable cache); elsewhere the free physical
    pages from ``sysconf``.
    """
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024  # kB
    except (OSError, ValueError, IndexError):
        pass
    try:
        pages = os.sysconf("SC_AVPHYS_PAGES")
        size = os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None
    return pages * size if pages > 0 and size > 0 else None


def gigabytes(n: float) -> str:
    """``37.3 GB`` (or ``512.0 MB`` below 0.1 GB)."""
    return f"{n / 1e9:.1f} GB" if n >= 1e8 else f"{n / 1e6:.1f} MB"


def budget() -> tuple[int | None, str]:
    """The bytes a run may take and where the figure comes from (for messages); ``None``
    when ``max_memory`` is null and the host reports no available memory."""
    set_to = _limit.get()
    if set_to is not None:
        return set_to, f"max_memory is {gigabytes(set_to)}"
    free = available_memory()
    if free is None:
        return None, ""
    allowed = int(free * DEFAULT_FRACTION)
    return allowed, (
        f"max_memory is {gigabytes(allowed)} (null: {DEFAULT_FRACTION:g} of the "
        f"{gigabytes(free)} available)"
    )


def check_memory(need: int, what: str, lower: str) -> None:
    """Refuse, in one :class:`ConfigError` line, ``need`` bytes beyond the budget.

    ``what`` names what takes the memory and the settings it comes from ("the windows of
    n_steps=100000 with data.n_series=500"), ``lower`` the keys that shrink it. No check
    when there is no budget (``max_memory`` null on a host that reports no figure).
    """
    allowed, source = budget()
    if allowed is not None and need > allowed:
        raise ConfigError(
            f"{what} would need about {gigabytes(need)} of memory; {source}: lower {lower}, "
            "or raise max_memory"
        )


def resident_bytes() -> int:
    """This process's resident memory now (0 where the host won't say)."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError, AttributeError):
        return 0


def step_width(net: Any) -> int:
    """Values a network keeps per window step: the outputs of its layers (a recurrent
    layer's gates counted), summed. ``net`` may live on the ``meta`` device."""
    from torch import nn

    width = 0
    for layer in net.modules():
        if isinstance(layer, nn.RNNBase):
            gates = GATES.get(layer.mode, 4)
            width += layer.hidden_size * layer.num_layers * (gates + 1) * (1 + layer.bidirectional)
        elif isinstance(layer, nn.Linear):
            width += layer.out_features
        elif isinstance(layer, nn.Conv1d):
            width += layer.out_channels
        elif isinstance(layer, nn.LayerNorm):
            width += 2 * int(layer.normalized_shape[-1])  # the normalised state and the cell's
        elif isinstance(layer, nn.BatchNorm1d):
            width += layer.num_features
    return width


@dataclass(frozen=True)
class Estimate:
    """A run's peak in bytes, in parts, each with the keys that size it."""

    parts: dict[str, tuple[int, tuple[str, ...]]]  # name -> (bytes, the keys that size it)

    @property
    def total(self) -> int:
        return sum(b for b, _ in self.parts.values())

    def describe(self) -> str:
        return ", ".join(f"{name} {gigabytes(b)}" for name, (b, _) in self.parts.items())

    def largest(self) -> str:
        """The keys of the largest part that a setting can shrink: ``a, b or c``."""
        sized = [v for v in self.parts.values() if v[1]]
        keys = max(sized)[1] if sized else ("the data", "the model")
        return f"{', '.join(keys[:-1])} or {keys[-1]}" if len(keys) > 1 else keys[0]


def estimate_run(datamodule: Any, module: Any, on_gpu: bool = False) -> Estimate:
    """The peak bytes of training ``module`` (a ``ForecastModule``, on ``meta`` or not) on
    ``datamodule`` (set up or not: only its settings are read). ``on_gpu``: the network and
    the activations live in the GPU's memory, and only the process and the data count."""
    sizes = datamodule.split_sizes()
    n_params = sum(p.numel() for p in module.parameters())
    steps = int(module.hparams.n_steps)
    width = step_width(module.net)
    per_batch = steps * width * FLOAT32
    # A batch holds at most the windows of its split (a split's items bound its windows).
    train = TRAIN_COPIES * min(datamodule.batch_size, sizes[0]) * per_batch
    evaluate = min(datamodule.eval_batch_size, max(sizes[1:])) * per_batch
    net_keys = NET_KEYS.get(module.hparams.net, ("model.hidden",))
    parts = {
        "the process": (resident_bytes() + RUNTIME_BYTES, ()),
        "the data": (datamodule.memory_bytes(sizes), (datamodule.LOWER,)),
    }
    if not on_gpu:
        parts["the network with its gradients and Adam state"] = (4 * FLOAT32 * n_params, net_keys)
        parts["the activations of a batch"] = (
            max(train, evaluate),
            ("data.batch_size", "data.eval_batch_size", "n_steps", *net_keys),
        )
    return Estimate(parts)


def check_run(datamodule: Any, module: Any, on_gpu: bool = False) -> Estimate:
    """Refuse a run whose :func:`estimate_run` exceeds the budget, in one line naming the
    keys of its largest part; returns the estimate."""
    estimate = estimate_run(datamodule, module, on_gpu)
    allowed, source = budget()
    if allowed is not None and estimate.total > allowed:
        raise ConfigError(
            f"this run would need about {gigabytes(estimate.total)} of memory at its peak "
            f"({estimate.describe()}); {source}: lower {estimate.largest()}, or raise max_memory"
        )
    log.info(f"memory: estimated peak {estimate.total / 1e6:.0f} MB ({estimate.describe()})")
    return estimate

"""Optional numba compilation of the fused layers' time loops (``pip install "seqforecast[fast]"``).

The fused layers (:mod:`seqforecast.fast.fused`, :mod:`seqforecast.fast.fused_ln`) run
their sequential time loops either as torch ops or, when numba is installed, as one
compiled call per loop.
numba is imported on the first compiled call, not at import time, and compiled code
is cached on disk (``cache=True``), so later processes skip the compilation.
Division follows IEEE rules (``error_model="numpy"``: no zero check, as in torch), which
also lets LLVM vectorise loops that divide. A compiled function may call another
``lazy_njit`` function: numba types it as the callee's dispatcher, which LLVM can inline.
``SEQFORECAST_NUMBA=0`` in the environment forces the pure-torch loops.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable
from functools import cache
from typing import Any

import torch


@cache
def numba_installed() -> bool:
    """Whether the ``numba`` package can be imported (checked once, without importing it)."""
    return importlib.util.find_spec("numba") is not None


# The largest batch for which the fused layers take their compiled loops. Their hand-written
# per-step product wins on small batches (the chapter trains with 32), where torch's loops pay
# per-op dispatch; on large ones (evaluation and predict batches) a step's BLAS matmul in the
# torch loop wins. The crossover, found by timing, lies between the two.
COMPILED_MAX_BATCH = 64


def use_numba(batch: int | None = None) -> bool:
    """Whether the fused layers take their compiled loops: numba installed, not switched off,
    and ``batch`` (when given) at most :data:`COMPILED_MAX_BATCH`."""
    if batch is not None and batch > COMPILED_MAX_BATCH:
        return False
    return os.environ.get("SEQFORECAST_NUMBA", "1") != "0" and numba_installed()


KERNEL_DTYPES = (torch.float32, torch.float64)


def compiled_loops(t: torch.Tensor, batch: int) -> bool:
    """Whether a fused layer runs its time loops compiled for ``t`` of ``batch`` rows:
    numba on (:func:`use_numba`), a CPU tensor, float32 or float64."""
    return t.device.type == "cpu" and t.dtype in KERNEL_DTYPES and use_numba(batch)


def as_numpy(t: torch.Tensor) -> Any:
    """A C-contiguous numpy array for a kernel (shares memory when ``t`` is contiguous,
    so kernels write into contiguous tensors in place)."""
    return t.detach().contiguous().numpy()


class LazyJit:
    """``numba.njit(cache=True)`` applied on the first call, so importing costs nothing."""

    def __init__(self, fn: Callable[..., Any]) -> None:
        self.fn = fn
        self.compiled: Callable[..., Any] | None = None
        self.__doc__, self.__name__ = fn.__doc__, fn.__name__

    def __call__(self, *args: Any) -> Any:
        return self.dispatcher()(*args)

    def dispatcher(self) -> Any:
        """The numba dispatcher of ``fn`` (imports numba the first time)."""
        if self.compiled is None:
            import numba

            self.compiled = numba.njit(cache=True, nogil=True, error_model="numpy")(self.fn)
        return self.compiled

    @property
    def _numba_type_(self) -> Any:
        """How numba types this object when compiled code calls it: as its dispatcher."""
        from numba import types

        return types.Dispatcher(self.dispatcher())


def lazy_njit(fn: Callable[..., Any]) -> LazyJit:
    """Decorator: compile ``fn`` with numba when it is first called."""
    return LazyJit(fn)

"""Read a ``train.py`` checkpoint safely and build its ``ForecastModule``: the one loader.

:func:`read_checkpoint` loads with ``torch.load(weights_only=True, map_location="cpu")``, so
pickled objects (code that could run on load) are refused, never executed, and
:func:`check_state_dict` refuses tensors that are not plain weights (a storage smaller than
the declared shape, a non-float dtype, NaN/inf); :func:`load_module` checks the
hyperparameters against the weights' shapes and the stored interval widths, builds the
module and picks its layers. ``predict``, the service, export, the reproduction, resume
checks and the Python API all load checkpoints through here; :func:`resolve_device` says
where a loaded model runs.
"""

from __future__ import annotations

import inspect
import pickle
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch

from seqforecast import intervals
from seqforecast.errors import ConfigError, InputError, SeqforecastError
from seqforecast.fast import use_layers
from seqforecast.memory import check_memory, gigabytes
from seqforecast.module import LEGACY_HPARAMS, ForecastModule
from seqforecast.rules import LEVELS

# The settings a checkpoint's hyper_parameters may hold: ForecastModule's named arguments,
# and those of earlier versions that it still accepts (and ignores).
MODULE_ARGS = (
    *(
        name
        for name, p in inspect.signature(ForecastModule.__init__).parameters.items()
        if name != "self" and p.kind is not inspect.Parameter.VAR_KEYWORD
    ),
    *LEGACY_HPARAMS,
)


DEVICES = ("auto", "cpu", "cuda")


def resolve_device(device: str) -> torch.device:
    """``auto`` -> CUDA when present, else CPU; ``cuda`` on a host without a GPU is an error."""
    if device not in DEVICES:
        raise ConfigError(f"device must be one of {list(DEVICES)}, got {device!r}")
    if device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device=cuda but no CUDA GPU is visible on this host; use device=cpu")
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(device)


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """The checkpoint dict, loaded with ``weights_only=True`` onto the CPU.

    Anything but plain containers, numbers, strings and tensors (pickled objects
    whose loading could run code) is refused, never executed.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"checkpoint not found: {path} (expected a .ckpt file from train.py)")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        found = re.search(r"GLOBAL ([\w.]+)", str(err))
        if found:
            name = found.group(1)
            raise InputError(
                f"checkpoint {path} holds non-weight objects (pickled {name}, code that could "
                "run on load) and was refused; only plain values and tensors are loaded"
            ) from None
        raise InputError(
            f"checkpoint {path} is not a torch checkpoint this program can read safely "
            f"(weights-only unpickling failed); expected a .ckpt file from train.py"
        ) from None
    except Exception as err:  # a damaged or foreign file fails in many ways; all mean the same
        reason = str(err).splitlines()[0][:120] if str(err) else type(err).__name__
        raise InputError(
            f"checkpoint {path} is truncated or not a torch checkpoint ({reason}); "
            "expected a .ckpt file from train.py"
        ) from None
    if not isinstance(ckpt, dict) or not all(
        isinstance(ckpt.get(k), dict) for k in ("hyper_parameters", "state_dict")
    ):
        found = sorted(map(str, ckpt)) if isinstance(ckpt, dict) else type(ckpt).__name__
        raise InputError(
            f"checkpoint {path} is not a seqforecast checkpoint: expected a dict with "
            f"'hyper_parameters' and 'state_dict' (written by train.py), found {found}"
        )
    check_state_dict(ckpt["state_dict"], path)
    return ckpt


# Integer buffers a network keeps by design (BatchNorm's count of batches seen).
INTEGER_BUFFERS = ("num_batches_tracked",)


def check_state_dict(state: dict[str, Any], path: str | Path) -> None:
    """Every tensor of ``state`` is real weights: its storage holds every value its shape
    declares (no stride-0 expansion or overlap, which would let a small file declare a
    huge network), a floating dtype (integer only for :data:`INTEGER_BUFFERS`), and only
    finite values. One :class:`InputError` line naming the tensor otherwise.

    Called by :func:`read_checkpoint`, so predict, the service, export and resume all check.
    """
    for key, t in state.items():
        if not isinstance(t, torch.Tensor):
            continue  # check_shapes names a non-tensor entry against the network
        shape = tuple(t.shape)
        stored = t.untyped_storage().nbytes() // max(t.element_size(), 1)
        if t.numel() > 0 and (
            any(n > 1 and st == 0 for n, st in zip(shape, t.stride(), strict=True))
            or stored < t.numel()
        ):
            raise InputError(
                f"checkpoint {path}: state_dict tensor {key} declares shape {list(shape)} "
                f"({t.numel()} values) over a storage of {stored} values (strides "
                f"{list(t.stride())}); expected weights stored in full, as train.py writes them"
            )
        integer = str(key).rsplit(".", 1)[-1] in INTEGER_BUFFERS
        allowed = not t.is_complex() and (
            t.is_floating_point() if not integer else t.dtype not in (torch.bool,)
        )
        if not allowed:
            raise InputError(
                f"checkpoint {path}: state_dict tensor {key} has dtype {t.dtype}; expected "
                f"floating-point weights{' (or an integer count)' if integer else ''}"
            )
        if t.is_floating_point():
            bad = ~torch.isfinite(t)
            if bad.any():
                first = [int(i) for i in bad.nonzero()[0]]
                raise InputError(
                    f"checkpoint {path}: state_dict tensor {key} holds {int(bad.sum())} "
                    f"NaN/inf values (first at index {first}); its forecasts would be NaN: "
                    "expected finite weights"
                )


# Hyperparameters that size the network's tensors (hidden is a list of widths).
SIZE_HPARAMS = ("n_features", "horizon", "hidden", "filters", "n_steps", "kernel_size")
GATES = (1, 2, 3, 4)  # a dimension may be a size times the gates stacked in one tensor


def _sizes(hparams: dict[str, Any]) -> str:
    return ", ".join(f"{k}={hparams[k]!r}" for k in SIZE_HPARAMS if hparams.get(k) is not None)


def _culprits(hparams: dict[str, Any], expected: tuple, actual: tuple) -> list[str]:
    """The size hparams that account for a dimension where ``expected`` (built from the
    hparams) and ``actual`` (the state_dict) differ: ``["horizon=1000000000"]``.

    A size equal to the dimension is named; failing that, one whose gate multiple it is
    (LSTM weights stack 4 gates of ``hidden``). Sizes of 1 fit too many dimensions to name.
    """
    if len(expected) != len(actual):
        return []
    differ = [(e, a) for e, a in zip(expected, actual, strict=True) if e != a]
    for gates in ((1,), GATES[1:]):
        found = []
        for key in SIZE_HPARAMS:
            value = hparams.get(key)
            values = value if isinstance(value, list | tuple) else [value]
            sizes = [v for v in values if isinstance(v, int) and v > 1]
            if any(e == g * v for e, _ in differ for g in gates for v in sizes):
                found.append(f"{key}={value!r}")
        if found:
            return found
    return []


def check_shapes(hparams: dict[str, Any], state: dict[str, Any], path: str | Path) -> None:
    """The network the hparams describe has exactly the state_dict's tensors and shapes.

    The network is built on the ``meta`` device (shapes only, no memory), so hparams that
    disagree with the weights (``hidden=[100000000]`` over 20-wide weights) are refused
    before anything of their size is allocated.
    """
    try:
        with torch.device("meta"):
            expected = {
                k: tuple(v.shape) for k, v in ForecastModule(**hparams).state_dict().items()
            }
    except SeqforecastError as err:
        raise InputError(f"checkpoint {path} describes no buildable model: {err}") from None
    except (RuntimeError, TypeError, ValueError, OverflowError) as err:
        reason = str(err).splitlines()[0][:120] if str(err) else type(err).__name__
        raise InputError(
            f"checkpoint {path} describes no buildable model: its hyper_parameters "
            f"({_sizes(hparams)}) give impossible tensor sizes ({reason})"
        ) from None
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    actual = {k: tuple(getattr(state[k], "shape", ())) for k in expected if k in state}
    wrong = [
        k
        for k in expected
        if k in state and (not isinstance(state[k], torch.Tensor) or actual[k] != expected[k])
    ]
    if wrong:
        k = wrong[0]
        named = _culprits(hparams, expected[k], actual[k])
        said = f"hyper_parameters {' and '.join(named)}" if named else "its hyper_parameters"
        raise InputError(
            f"checkpoint {path}: {said} do not match its state_dict: {k} is {actual[k]} in "
            f"the state_dict but {expected[k]} by the hyper_parameters ({len(wrong)} of "
            f"{len(expected)} tensors differ: {wrong[:4]}; missing {missing}, "
            f"unexpected {unexpected})"
        )
    if missing or unexpected:
        raise InputError(
            f"checkpoint {path}: its weights do not fit the network in its hyper_parameters "
            f"(missing {missing}, unexpected {unexpected})"
        )


def check_calibration(cal: intervals.Calibration, where: str) -> None:
    """Stored interval widths that give bounds: levels in (0, 100), no NaN, and for
    ``conformal`` and ``model`` no negative width (``inf``, too few calibration windows,
    is allowed); a ``cqr`` widening may be negative (it narrows) but not ``-inf``.
    One :class:`InputError` line naming ``where`` otherwise."""
    problem = None
    if not LEVELS.check(cal.levels) or cal.n_calibration < 0:
        problem = f"levels {cal.levels} and n_calibration {cal.n_calibration}"
    elif np.isnan(cal.widths).any():
        problem = f"{int(np.isnan(cal.widths).sum())} NaN widths"
    elif cal.method == "cqr" and (cal.widths == -np.inf).any():
        problem = "widths of -inf"
    elif cal.method != "cqr" and (cal.widths < 0).any():
        problem = f"negative widths (smallest {cal.widths.min():g})"
    if problem:
        raise InputError(
            f"{where}: its '{intervals.CHECKPOINT_KEY}' entry ({cal.method}) has {problem}; "
            "its interval bounds would be NaN or inverted. Expected the calibration "
            "train.py writes (no NaN, widths >= 0 or for cqr > -inf, levels in (0, 100))"
        )


def build_module(ckpt: dict[str, Any], path: str | Path) -> ForecastModule:
    """The ``ForecastModule`` described by the checkpoint's hparams, with its weights.

    Its sizes are checked against the state_dict first (:func:`check_shapes`), so the
    module built for real is no larger than the weights already read, and that size against
    the memory budget; stored interval widths are checked too (:func:`check_calibration`).
    """
    hparams = ckpt["hyper_parameters"]
    unknown = sorted(set(map(str, hparams)) - set(MODULE_ARGS))
    if unknown:
        raise InputError(
            f"checkpoint {path} is not a seqforecast checkpoint: its hyper_parameters have "
            f"keys {unknown}; expected only {list(MODULE_ARGS)}"
        )
    check_shapes(hparams, ckpt["state_dict"], path)
    stored = ckpt.get(intervals.CHECKPOINT_KEY)
    if stored is not None:
        where = f"checkpoint {path}"
        check_calibration(intervals.Calibration.from_dict(stored, where, hparams["horizon"]), where)
    weights = sum(t.numel() * t.element_size() for t in ckpt["state_dict"].values())
    check_memory(
        2 * weights,  # the weights read, and the network built to take them
        f"checkpoint {path}'s network ({gigabytes(weights)} of weights)",
        "the network's size (a smaller model)",
    )
    try:
        module = ForecastModule(**hparams)
    except SeqforecastError as err:
        raise InputError(f"checkpoint {path} describes no buildable model: {err}") from None
    module.load_state_dict(ckpt["state_dict"])
    return module


def load_module(path: str | Path, layers: str = "fast") -> ForecastModule:
    """The checkpoint's ``ForecastModule`` with its weights, on the CPU, in eval mode.

    ``layers`` (fast|plain) picks the layer implementation, as in training
    (:func:`seqforecast.fast.use_layers`); the weights are the same either way.

    Args:
        path: A ``.ckpt`` file written by ``train.py``.
        layers: ``fast`` (fused layers) or ``plain`` (the torch modules).

    Returns:
        The module with its weights, in eval mode on the CPU.

    Raises:
        InputError: The file is missing, unsafe, damaged or not a seqforecast checkpoint.
        ConfigError: ``layers`` is not allowed, or the network would not fit in memory.
    """
    module = build_module(read_checkpoint(path), path)
    use_layers(module, layers)
    return module.eval()

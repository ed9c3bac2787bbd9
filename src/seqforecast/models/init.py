"""Keras-parity initialisation (``init=keras``), applied in place to any of our networks.

Keras defaults (2nd ed. notebook, TF 2.x): Glorot-uniform input kernels, orthogonal
recurrent kernels, zero biases (LSTM forget gate 1), Glorot-uniform Dense/Conv1D
kernels with zero bias, LayerNormalization and BatchNormalization ``epsilon=1e-3``
and BatchNormalization ``momentum=0.99`` (torch ``momentum=0.01``).
"""

from __future__ import annotations

import torch
from torch import nn

from seqforecast.errors import ConfigError
from seqforecast.names import INITS as INITS  # re-exported: the rule of model.init

KERAS_NORM_EPS = 1e-3
KERAS_BN_MOMENTUM = 0.01  # torch's momentum is 1 - Keras's 0.99
KERAS_ADAM_EPS = 1e-7
TORCH_ADAM_EPS = 1e-8


def _init_recurrent(module: nn.Module) -> set[str]:
    """Re-initialise ``weight_ih*`` / ``weight_hh*`` / ``bias_*`` by their ``nn.RNN`` names."""
    done = set()
    for name, p in module.named_parameters(recurse=False):
        if name.startswith("weight_ih"):
            nn.init.xavier_uniform_(p)  # Keras kernel (in, gates*H): fans in, gates*H
        elif name.startswith("weight_hh"):
            # torch [gates*H, H] with orthonormal columns = Keras (H, gates*H) with orthonormal rows
            nn.init.orthogonal_(p)
        elif name.startswith(("bias_ih", "bias_hh")):
            nn.init.zeros_(p)  # the simple RNN's two biases sum to Keras's one zero bias
            if isinstance(module, nn.LSTM) and name.startswith("bias_ih"):
                h = module.hidden_size
                nn.init.ones_(p[h : 2 * h])  # gate order i, f, g, o: forget bias 1
        else:
            continue
        done.add(name)
    return done


def keras_init_(net: nn.Module) -> nn.Module:
    """Re-initialise ``net`` in place like Keras would and return it.

    Raises :class:`ConfigError` naming any parameter it does not know how to initialise,
    so a new layer type cannot silently keep torch's defaults.
    """
    with torch.no_grad():
        for mod_name, module in net.named_modules():
            done = _init_recurrent(module)
            if isinstance(module, nn.Linear | nn.Conv1d):
                nn.init.xavier_uniform_(module.weight)  # Conv1d fans: C_in * k, C_out * k
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
                done |= {"weight", "bias"}
            elif isinstance(module, nn.LayerNorm | nn.BatchNorm1d):
                module.eps = KERAS_NORM_EPS
                if isinstance(module, nn.BatchNorm1d):
                    module.momentum = KERAS_BN_MOMENTUM
                    module.reset_running_stats()
                module.reset_parameters()  # gamma 1, beta 0
                done |= {"weight", "bias"}
            left = [n for n, _ in module.named_parameters(recurse=False) if n not in done]
            if left:
                names = ", ".join(f"{mod_name}.{n}" if mod_name else n for n in left)
                raise ConfigError(
                    f"model.init=keras does not know how to initialise {names} "
                    f"({type(module).__name__}); use model.init=torch"
                )
    return net


def adam_eps(init: str, eps: float | None) -> float:
    """Adam's epsilon: ``eps`` when given, else Keras's 1e-7 or torch's 1e-8 after ``init``."""
    if eps is not None:
        return eps
    return KERAS_ADAM_EPS if init == "keras" else TORCH_ADAM_EPS

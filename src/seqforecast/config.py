"""Config validation at the boundary: a composed config checked before anything is built.

``validate_config(cfg)`` applies the rule of every known key present in ``cfg`` (the table in
:mod:`seqforecast.rules`), so a wrong value anywhere stops the run with one line: the key,
the value, and what is allowed. Keys of nodes built from our own classes (``model``,
``data``) are also checked against the class signature, so a misspelt key lists the
accepted ones; the ``scheduler`` node is checked by :func:`~seqforecast.schedules.check_scheduler`.
"""

from __future__ import annotations

import inspect

import hydra
from omegaconf import DictConfig, OmegaConf

from seqforecast.errors import ConfigError
from seqforecast.rules import check_value, rules
from seqforecast.schedules import check_scheduler

MISSING = object()


def _check_keys(cfg: DictConfig, node_key: str) -> None:
    """Keys of a node built from a class must be parameters of that class."""
    node = OmegaConf.select(cfg, node_key)
    if not isinstance(node, DictConfig) or "_target_" not in node:
        return
    target = hydra.utils.get_class(node._target_)
    # Named parameters only: a **kwargs of ours takes old checkpoints' keys, not settings.
    params = {
        name: p
        for name, p in inspect.signature(target).parameters.items()
        if p.kind is not inspect.Parameter.VAR_KEYWORD
    }
    for key in node:
        if not str(key).startswith("_") and key not in params:
            allowed = sorted(p for p in params if p != "self")
            raise ConfigError(
                f"{node_key}.{key} is not a setting of {target.__name__}; allowed: {allowed}"
            )


def validate_config(cfg: DictConfig) -> None:
    """Check every known key present in ``cfg``; raise :class:`ConfigError` on the first bad one."""
    for key, rule in rules().items():
        value = OmegaConf.select(cfg, key, default=MISSING)
        if value is MISSING:
            continue
        if OmegaConf.is_config(value):
            value = OmegaConf.to_container(value, resolve=True)
        check_value(key, value, rule)
    for node_key in ("model", "data"):
        _check_keys(cfg, node_key)
    if OmegaConf.select(cfg, "scheduler") is not None:
        check_scheduler(OmegaConf.to_container(cfg.scheduler, resolve=True))

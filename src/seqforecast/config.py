"""Config validation at the boundary: a composed config checked before anything is built.

``validate_config(cfg)`` applies the rule of every known key present in ``cfg`` (the table in
:mod:`seqforecast.rules`), so a wrong value anywhere stops the run with one line: the key,
the value, and what is allowed. Keys of nodes built from a class (``model``, ``data``,
``trainer``) are also checked against the class signature, so a misspelt key lists the
accepted ones; the ``scheduler`` node is checked by :func:`~seqforecast.schedules.check_scheduler`,
and a logger whose package is not installed names the extra to install.

:func:`instantiate` builds a checked node (train and ``auto`` resolution both build through it).

The rules come first and import nothing heavy; the class checks import the classes (torch,
Lightning), which the run needs next anyway.
"""

from __future__ import annotations

import importlib.util
import inspect
from typing import Any

import hydra
from hydra.errors import InstantiationException
from omegaconf import DictConfig, OmegaConf

from seqforecast.errors import ConfigError, SeqforecastError
from seqforecast.rules import AUTO_KEYS, check_value, or_auto, rules

MISSING = object()
# Loggers whose package is an extra: (the modules that serve, the extra that installs one).
LOGGER_EXTRAS = {
    "lightning.pytorch.loggers.TensorBoardLogger": (("tensorboard", "tensorboardX"), "tensorboard"),
}


def instantiate(node: DictConfig, **kwargs: Any) -> Any:
    """``hydra.utils.instantiate`` with plain containers, re-raising our own errors unwrapped."""
    try:
        return hydra.utils.instantiate(node, _convert_="all", **kwargs)
    except InstantiationException as err:
        cause = err.__cause__
        if isinstance(cause, SeqforecastError):
            raise cause from None
        raise


def _check_logger(cfg: DictConfig) -> None:
    """A logger needing a package that is not installed: one line naming the extra."""
    target = OmegaConf.select(cfg, "logger._target_", default=None)
    if target not in LOGGER_EXTRAS:
        return
    modules, extra = LOGGER_EXTRAS[target]
    if not any(importlib.util.find_spec(m) for m in modules):
        choice = OmegaConf.select(cfg, "hydra.runtime.choices.logger", default=None)
        which = f"logger={choice}" if choice else f"logger {target}"
        raise ConfigError(
            f"{which} needs {' or '.join(modules)}, which is not installed: "
            f'pip install -e ".[{extra}]" (or pip install {modules[0]})'
        )


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


def _check_validation_users(cfg: DictConfig) -> None:
    """``trainer.limit_val_batches=0`` runs no validation: what watches a val metric is refused."""
    if OmegaConf.select(cfg, "trainer.limit_val_batches", default=None) not in (0, 0.0):
        return
    users = []
    if OmegaConf.select(cfg, "callbacks.early_stopping", default=None) is not None:
        users.append("callbacks=early_stopping")
    if OmegaConf.select(cfg, "scheduler.name", default=None) == "plateau":
        users.append("scheduler=plateau")
    if users:
        raise ConfigError(
            f"trainer.limit_val_batches=0 runs no validation, but {' and '.join(users)} "
            f"watch{'es' if len(users) == 1 else ''} the validation metric "
            f"{OmegaConf.select(cfg, 'monitor', default='val/mse')}: drop "
            f"{'it' if len(users) == 1 else 'them'} or let validation run"
        )


def validate_config(cfg: DictConfig) -> None:
    """Check every known key present in ``cfg``; raise :class:`ConfigError` on the first bad one."""
    for key, rule in rules().items():
        value = OmegaConf.select(cfg, key, default=MISSING)
        if value is MISSING:
            continue
        if OmegaConf.is_config(value):
            value = OmegaConf.to_container(value, resolve=True)
        check_value(key, value, or_auto(rule) if key in AUTO_KEYS else rule)
    _check_logger(cfg)
    _check_validation_users(cfg)
    for node_key in ("model", "data", "trainer"):
        _check_keys(cfg, node_key)
    if OmegaConf.select(cfg, "scheduler") is not None:
        from seqforecast.schedules import check_scheduler

        check_scheduler(OmegaConf.to_container(cfg.scheduler, resolve=True))

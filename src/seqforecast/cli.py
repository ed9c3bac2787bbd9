"""What the scripts share: their config checked before Hydra starts the run, and one line on a
refusal.

``hydra.main`` composes the config, creates the run folder and only then calls the script's
task, and a task imports torch and Lightning (seconds) before it can look at a value. So each
script first calls :func:`check_first`, which composes the same config with the Hydra Compose
API and checks it with nothing heavy imported for the common mistakes: a refusal is one line
(``error: ...``, exit 2) within a second and leaves no folder. What it checks:

- every value against :mod:`seqforecast.rules` (``seed=-1``, ``trainer.precision=7``) and, for
  ``train``, :func:`~seqforecast.config.validate_config` whole (misspelt keys of ``model``,
  ``data`` and ``trainer``, the logger's extra);
- top-level keys the primary config does not have (``+n_step=5``, ``ahaed=3``);
- a misspelt key without ``+`` (``model.hiden=[32]``): Hydra would only suggest
  ``+model.hiden``; the key is tried as an addition and refused by the project's own line
  when it is not a setting (a real setting absent from the yaml keeps Hydra's ``+`` hint);
- ``hydra.run.dir``: it must be a folder the run can create (not under ``/proc`` or a file).

It runs for commands written as ``key=value`` overrides (and ``-m``): with another flag
(``--help``, ``--cfg``, ``-cn``) Hydra parses the command line alone. For a multirun, what its
jobs share is checked here; the swept values are checked by each job's task. A refusal that
only the task can see (a checkpoint that does not load, say) goes through :func:`task_wrapper`,
which also removes the run folder Hydra made when it holds nothing but Hydra's own files.
"""

from __future__ import annotations

import contextlib
import difflib
import errno
import functools
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import ConfigCompositionException
from hydra.types import RunMode
from omegaconf import DictConfig

from seqforecast.errors import ConfigError, SeqforecastError
from seqforecast.outputs import output_error
from seqforecast.rules import check

CONF = Path(__file__).resolve().parents[2] / "conf"
NOT_SET = re.compile(r"Could not override '([^']+)'")
MULTIRUN = {"-m", "--multirun"}
HYDRA_FILES = {"config.yaml", "hydra.yaml", "overrides.yaml"}  # what Hydra writes to .hydra/
RUN_RECORD = {"status", "config.yaml", ".lock"}  # what train writes before its data is made
REFUSALS = ("failed: ConfigError", "failed: InputError")


def _check_train(cfg: DictConfig) -> None:
    from seqforecast.config import validate_config

    validate_config(cfg)


def _check_predict(cfg: DictConfig) -> None:
    from seqforecast.core import check_max_ahead

    max_ahead = check("max_ahead", cfg.get("max_ahead"))
    if isinstance(cfg.get("ahead"), int):
        check_max_ahead(cfg.ahead, max_ahead, "predict's")


# The checks of each primary config that need no checkpoint (its task repeats them).
CHECKS: dict[str, Callable[[DictConfig], None]] = {"train": _check_train, "predict": _check_predict}


def check_first(config_name: str, argv: Sequence[str] | None = None, conf: Path = CONF) -> None:
    """Check the config ``argv`` (default ``sys.argv[1:]``) composes; print one line and exit 2
    on a refusal, else return and let ``hydra.main`` run (see the module doc)."""
    args = list(sys.argv[1:] if argv is None else argv)
    flags = {a for a in args if a.startswith("-")}
    if not flags <= MULTIRUN:
        return
    try:
        find_refusal(config_name, [a for a in args if a not in MULTIRUN], conf, sweep=bool(flags))
    except SeqforecastError as err:
        refuse(err)
    except Exception:  # e.g. an interpolation that does not resolve: Hydra reports it, as before
        return


def find_refusal(
    config_name: str, overrides: list[str], conf: Path = CONF, sweep: bool = False
) -> None:
    """Raise the :class:`SeqforecastError` the config of ``overrides`` earns, if any.

    ``sweep``: the overrides of a multirun; what its jobs share is checked (the swept keys,
    by each job's task), so a mistake every job would make stops the sweep before it starts.
    """
    try:
        parsed = OverridesParser.create().parse_overrides(overrides)
    except Exception:  # Hydra's own message, from hydra.main, but for one common slip
        _check_unquoted_items(overrides)
        return
    if any(o.is_sweep_override() for o in parsed):
        if not sweep:
            return  # Hydra says how to sweep
        parsed = [o for o in parsed if not o.is_sweep_override()]
        overrides = [o.input_line for o in parsed]
    unset: list[str] = []
    while True:
        try:
            cfg = _compose(conf, config_name, overrides)
            break
        except ConfigCompositionException as err:
            found = NOT_SET.match(str(err))
            key = found[1] if found else None
            line = next((o.input_line for o in parsed if o.key_or_group == key), None)
            if line is None or line.startswith("+") or len(unset) > 20:
                return  # Hydra's own message, from hydra.main
            unset.append(found[1])
            overrides = [f"+{o}" if o == line else o for o in overrides]
    added = [
        o.key_or_group
        for o in OverridesParser.create().parse_overrides(overrides)
        if (o.is_add() or o.is_force_add())
        and not re.search(r"[./]", o.key_or_group)
        and o.key_or_group not in cfg.hydra.runtime.choices
    ]
    if added:
        _check_top_level(conf, config_name, overrides, added)
    if not unset and not sweep:  # a sweep's folders are the sweeper's
        check_run_dir(Path(str(cfg.hydra.run.dir)))
    if config_name in CHECKS:
        CHECKS[config_name](cfg)
    # Past here, keys set without "+" are settings the class takes, absent from the yaml:
    # Hydra's "+key" hint is right.


def _check_unquoted_items(overrides: list[str]) -> None:
    """A list whose items hold ``=`` (``train_overrides=[trainer.max_epochs=2]``) needs its
    items quoted for Hydra's grammar: say how, in one line."""
    for override in overrides:
        found = re.fullmatch(r"([\w.]+)=\[([^'\"\[\]]*=[^'\"\[\]]*)\]", override)
        if found:
            items = ",".join(f"'{item.strip()}'" for item in found[2].split(","))
            raise ConfigError(
                f"{override}: Hydra cannot read list items holding '='; quote each one, "
                f'and the whole override for the shell: "{found[1]}=[{items}]"'
            )


def _compose(conf: Path, config_name: str, overrides: list[str]) -> DictConfig:
    with initialize_config_dir(config_dir=str(conf), version_base="1.3"):
        return compose(config_name, overrides=overrides, return_hydra_config=True)


def _check_top_level(conf: Path, config_name: str, overrides: list[str], added: list[str]) -> None:
    """Keys added at the top (``+n_step=5``) must be keys of the primary config."""
    adds = set(added)
    kept = [o for o in overrides if re.split(r"[=~+]+", o.lstrip("+~"), maxsplit=1)[0] not in adds]
    known = sorted(str(k) for k in _compose(conf, config_name, kept) if k != "hydra")
    for key in added:
        if key not in known:
            near = difflib.get_close_matches(key, known, n=1)
            hint = f"did you mean {near[0]}? " if near else ""
            raise ConfigError(
                f"{key} is not a setting of {config_name}.yaml; {hint}allowed: {known}"
            )


def check_run_dir(run_dir: Path) -> None:
    """``run_dir`` can be made as Hydra will make it: its missing folders are created and
    removed again; an :class:`OutputError` line (as for ``output_dir=``) when they cannot be."""
    missing, p = [], run_dir.absolute()
    while not p.exists() and p != p.parent:
        missing.append(p)
        p = p.parent
    made: list[Path] = []
    try:
        if not missing and not run_dir.is_dir():
            raise NotADirectoryError(errno.ENOTDIR, "Not a directory", str(run_dir))
        for folder in reversed(missing):
            folder.mkdir()
            made.append(folder)
    except OSError as err:
        raise output_error(err, run_dir, "hydra.run.dir") from None
    finally:
        for folder in reversed(made):
            with contextlib.suppress(OSError):  # someone else's by now: theirs to keep
                folder.rmdir()


def task_wrapper(task: Callable | None = None, *, training: bool = False) -> Callable:
    """Decorate a script's main (below ``@hydra.main``, which unwraps it to find the script):
    a :class:`SeqforecastError` is one ``error:`` line and exit 2 (:func:`refuse`), no traceback.
    ``training``: an interrupted training prints ``interrupted: <why>`` and exits 128 + signal;
    a refused job of a multirun prints its line (its ``status`` keeps it) and returns nan."""
    if task is None:
        return functools.partial(task_wrapper, training=training)

    @functools.wraps(task)
    def main(*args: Any, **kwargs: Any) -> Any:
        try:
            return task(*args, **kwargs)
        except SeqforecastError as err:
            if not training:
                refuse(err)
            from seqforecast.callbacks import TrainingInterrupted  # loaded by the task already

            if isinstance(err, TrainingInterrupted):
                print(f"interrupted: {err}", file=sys.stderr)
                sys.exit(128 + err.signum)
            if HydraConfig.get().mode != RunMode.MULTIRUN:
                refuse(err)
            print(f"error: {err}", file=sys.stderr)
            return float("nan")  # the sweep goes on

    return main


def refuse(err: SeqforecastError) -> NoReturn:
    """Print ``err`` as the one ``error:`` line, remove the run folder Hydra made for nothing
    (:func:`remove_unused_run_dir`) and exit with status 2."""
    print(f"error: {err}", file=sys.stderr)
    if HydraConfig.initialized():
        remove_unused_run_dir(Path(HydraConfig.get().runtime.output_dir))
    sys.exit(2)


def _refusal_record(run_dir: Path) -> set[str]:
    """The files a training refused by its settings or inputs wrote before it stopped
    (``status`` says ``failed: ConfigError`` or ``InputError``): nothing else to keep."""
    try:
        status = (run_dir / "status").read_text()
    except OSError:
        return set()
    return RUN_RECORD if status.startswith(REFUSALS) else set()


def remove_unused_run_dir(run_dir: Path) -> None:
    """Remove ``run_dir`` when it holds only what Hydra writes (``.hydra/`` and the job's
    log), and what a training refused by its settings or inputs records (its ``status``,
    ``config.yaml`` and lock: no checkpoint, no metrics), then its parents that are left
    empty, up to the working folder."""
    hydra_dir, here = run_dir / ".hydra", Path.cwd().absolute()
    if run_dir.absolute() == here or run_dir.absolute() in here.parents:
        return  # hydra.run.dir=. : the working folder stays
    try:
        entries = {p.name for p in run_dir.iterdir()}
        logs = {n for n in entries if n.endswith(".log") and (run_dir / n).is_file()}
        record = entries & _refusal_record(run_dir)
        if entries - logs - record - {".hydra"} or not (
            {p.name for p in hydra_dir.iterdir()} <= HYDRA_FILES
        ):
            return
        for name in HYDRA_FILES:
            (hydra_dir / name).unlink(missing_ok=True)
        hydra_dir.rmdir()
        for name in logs | record:
            (run_dir / name).unlink()
        run_dir.rmdir()
        folder = run_dir.absolute().parent
        while folder != here and here in folder.parents:  # outputs/<date>, made for this run
            folder.rmdir()
            folder = folder.parent
    except OSError:  # not empty, or not ours to remove: left as it is
        return

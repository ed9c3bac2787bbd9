"""Ensembles as one artifact: a folder of member checkpoints and a manifest, ``ensemble.json``.

An ensemble's members are named candidates, each either

- a **network**: one or more ``train.py`` checkpoints (a seed ensemble) whose forecasts are
  averaged; every checkpoint of the folder shares its data settings and training scaling;
- a **statistical model**: a statsforecast class named in :data:`STATISTICAL` (or
  ``SeasonalNaive``), refitted on each window's history in the data's units at every forecast.
  Only its name and season are stored: nothing pickled, so no code from the folder runs at load.

The manifest holds the members, their ``weights`` and the rule ``combine`` (``mean``: the
weighted mean; ``median``: the median of the members, weights unused), the ``horizon`` of the
combination's direct forecast, the window length it reads (``n_steps``: at least every
network's; the history a statistical member is fitted on), the season, the conformal
``intervals`` calibrated on the combination's own errors and, for an ensemble of statistical
members alone, the data settings and scaling a checkpoint would hold.

:class:`EnsembleForecaster` is a :class:`~seqforecast.core.ForecastCore`: checks, batches,
the iterative loop past the horizon, intervals and tables are the core's, so ``predict.py``,
``backtest.py``, the service and the Python API load an ensemble folder wherever they load a
checkpoint (:func:`seqforecast.predict.loading.load_forecaster`), and ``export.py`` writes it
as ONNX members plus the manifest for :class:`~seqforecast.onnx.OnnxForecaster`
(:func:`load_ensemble` with its loader). Members are combined in the model's scale; the
median is the same in the data's units (the scaling is monotone), the mean too when
``data.transform=none`` (affine).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from seqforecast import intervals
from seqforecast.core import ForecastCore, Series, iterative_forecast
from seqforecast.data.scaling import Scaler
from seqforecast.errors import ConfigError, InputError, OutputError
from seqforecast.outputs import atomic_open

MANIFEST = "ensemble.json"
FORMAT, VERSION = "seqforecast-ensemble", 1
COMBINES = ("mean", "median")
SEASONAL_NAIVE = "SeasonalNaive"  # numpy, in the model's scale (a copy of a past value)
STATISTICAL = ("AutoETS", "AutoARIMA", "AutoTheta", "AutoCES", "ARIMA", SEASONAL_NAIVE)
# A statistical member's own settings (``settings``: one dict, or one per series of the
# ensemble): plain numbers, the only keyword arguments its class is given besides the season.
SETTINGS = {
    "ARIMA": {
        "order": "3 integers >= 0",
        "seasonal_order": "3 integers >= 0",
        "season_length": "an integer >= 1",
        "include_mean": "true or false",
        "include_drift": "true or false",
    }
}
# Data settings a seed or a window length may change; every other one members must share.
# The file's path too: the rows are compared through the scaling fitted on them (a copy of
# the file, or a moved one, holds the same rows).
PER_RUN = (
    "n_steps", "horizon", "target_kind", "batch_size", "eval_batch_size", "shuffle_seed", "path"
)  # fmt: skip
Loader = Callable[[Path], ForecastCore]  # a member's file -> its forecaster
log = logging.getLogger(__name__)


def is_ensemble(path: str | Path) -> bool:
    """Whether ``path`` is an ensemble folder (or its manifest)."""
    path = Path(path)
    return (path / MANIFEST).is_file() or (path.name == MANIFEST and path.is_file())


class EnsembleForecaster(ForecastCore):
    """Members' forecasts combined: the core's forecasts of a :data:`MANIFEST` folder.

    Args:
        manifest: The checked manifest (:func:`read_manifest`).
        networks: Per network member (in manifest order), its loaded checkpoints.
        folder: The ensemble's folder (in messages).
    """

    def __init__(
        self, manifest: dict[str, Any], networks: dict[str, list[ForecastCore]], folder: Path
    ) -> None:
        self.manifest, self.networks, self.folder = manifest, networks, folder
        self.members = manifest["members"]
        self.weights = np.array([float(m.get("weight", 1.0)) for m in self.members])
        self.combine = manifest["combine"]
        self.nets = nets = [fc for group in networks.values() for fc in group]
        first = nets[0] if nets else None
        n_features = first.n_features if first else 1
        stats = [m["name"] for m in self.members if "model" in m]
        if stats and n_features != 1:
            raise InputError(
                f"{folder}: statistical members {stats} forecast one series, but the networks "
                f"take n_features={n_features} inputs"
            )
        n_steps = max([int(manifest.get("n_steps") or 1), *(fc.n_steps for fc in nets)])
        _check_members(manifest, networks, n_steps, first.season if first else 1, folder)
        hparams = {
            "n_steps": n_steps,
            "horizon": int(manifest["horizon"]),
            "target": "next",
            "n_features": n_features,
            "net": "ensemble",
            "season": int(manifest.get("season") or (first.season if first else 1)),
        }
        if first is not None:
            data, scaler, series, features = first.data, first.scaler, first.series, first.features
        else:
            state = manifest.get("data_state") or {}
            data = manifest.get("data")
            scaler = Scaler.from_dict(state["scaler"]) if state.get("scaler") else None
            series = [tuple(map(str, k)) for k in state.get("series", [])] or None
            features = list(state.get("columns", [])) or None
        stored = manifest.get("intervals")
        where = str(folder / MANIFEST)
        calibration = None
        if stored is not None:
            calibration = intervals.Calibration.from_dict(stored, where, hparams["horizon"])
        super().__init__(hparams, data, scaler, calibration, series, features)
        self.season = hparams["season"]
        self.fixed = f"an ensemble reads exactly n_steps={n_steps} steps"
        self.device = getattr(first, "device", "cpu")

    def forward(self, x: np.ndarray) -> np.ndarray:
        """The combination of windows scaled globally: :meth:`forward_series` of ``None``."""
        return self.forward_series(x, None)

    def forward_series(self, x: np.ndarray, series: Series = None) -> np.ndarray:
        """Each member's forecast ``[B, k]`` of the last steps of ``x [B, T, F]`` it reads,
        combined by the manifest's rule (float32, in the model's scale)."""
        k = self.horizon
        out = []
        for member in self.members:
            name = member["name"]
            if name in self.networks:
                group = [_direct(fc, x[:, -fc.n_steps :], k) for fc in self.networks[name]]
                out.append(np.mean(group, axis=0))
            else:
                out.append(self.statistical(member, x[..., 0], k, series))
        stacked = np.stack(out)  # [M, B, k]
        if self.combine == "median":
            return np.median(stacked, axis=0).astype(np.float32)
        w = self.weights / self.weights.sum()
        return np.tensordot(w, stacked, axes=1).astype(np.float32)

    def statistical(
        self, member: dict[str, Any], x: np.ndarray, k: int, series: Series
    ) -> np.ndarray:
        """A statistical member's ``[B, k]`` forecast (model scale) of the targets ``x [B, T]``,
        refitted on each window in the data's units."""
        model, season = member["model"], int(member.get("season") or self.season)
        if model == SEASONAL_NAIVE:  # copies of past values: the same in any monotone scale
            j = np.arange(1, k + 1)
            return x[:, x.shape[1] - 1 + j - season * ((j - 1) // season + 1)]
        if self.scaler is not None and self.scaler.per_series and series is None:
            raise InputError(
                f"ensemble member {member['name']!r} is fitted in the data's units, and this "
                "ensemble is scaled per series: forecast through a table (predict.py "
                "input=<csv>, forecast_table, forecast_rows) or a backtest, which know the series"
            )
        units = x if self.scaler is None else self.scaler.inverse(x, 0, series)  # [B, T]
        cls, settings = _statsforecast(model), self.settings_of(member, series, len(x))
        y = np.stack(
            [
                cls(**{"season_length": season, **kw}).forecast(y=row, h=k)["mean"]
                for row, kw in zip(units, settings, strict=True)
            ]
        )  # [B, k]
        if self.scaler is None:
            return y
        return self.scaler.transform(y[..., np.newaxis], series)[..., 0]

    def calibrate(self, levels: list[float], method: str) -> intervals.Calibration:
        """Conformal widths of ``levels`` calibrated now on the val windows of the networks'
        data (rebuilt from their stored settings, the file read again), forecast by the
        combination: its own errors, never a member's.

        Raises:
            InputError: No network holds the data, or it cannot be rebuilt or read.
        """
        if not self.networks or self.data is None:
            return super().calibrate(levels, method)
        from seqforecast.predict.training_data import datamodule_of

        data = datamodule_of(self.data, self.n_steps, self.horizon)
        n = len(data.splits["val"])
        log.info(f"calibrating the ensemble's intervals at levels={levels} on {n} val windows")
        batches = (
            (self.predict(x.numpy(), series=s), None, y) for x, y, s in data.eval_batches("val")
        )
        return intervals.calibrate_batches(batches, n, levels, "conformal")

    def settings_of(self, member: dict[str, Any], series: Series, n: int) -> list[dict]:
        """A statistical member's keyword arguments for each of ``n`` windows of ``series``:
        its one ``settings``, or those of each window's series (``[B]`` indices)."""
        settings = member.get("settings") or {}
        if isinstance(settings, dict):
            return [_arguments(settings)] * n
        if len(settings) == 1:
            return [_arguments(settings[0])] * n
        if series is None:
            raise InputError(
                f"ensemble member {member['name']!r} has settings per series; forecast "
                "through a table, forecast_rows or a backtest, which know the series"
            )
        rows = np.broadcast_to(np.asarray(series), (n,))
        return [_arguments(settings[int(i)]) for i in rows]

    def forecast_table(
        self,
        path: Any,
        ahead: int | None = None,
        window: str = "sliding",
        levels: Sequence[float] = (),
        method: str | None = None,
    ) -> Any:
        """Forecast past the last row of each series of a table like the training file
        (:meth:`seqforecast.predict.Forecaster.forecast_table`)."""
        from seqforecast.predict import tables

        if not self.file_data:
            raise InputError(f"{self.folder}: this ensemble was not trained on a file (data=csv)")
        ahead = self.horizon if ahead is None else ahead
        self.check_options(ahead, window, 1)
        return tables.forecast_table(self, path, ahead, window, levels, method)

    def generated_data(self, *args: Any, **kwargs: Any) -> Any:
        """The generated series of the networks' training (their first checkpoint's)."""
        if not self.nets:
            raise InputError(f"{self.folder}: an ensemble of statistical members has no data")
        return self.nets[0].generated_data(*args, **kwargs)


def _check_members(
    manifest: dict[str, Any],
    networks: dict[str, list[ForecastCore]],
    n_steps: int,
    season: int,
    folder: Path,
) -> None:
    """Each member can forecast the manifest's horizon from windows of ``n_steps``: a seq2seq
    network at least that far (its forecasts cannot be fed back), seasonal naive within a
    window that holds its season."""
    horizon = manifest["horizon"]
    for name, group in networks.items():
        if any(fc.target != "next" and fc.horizon < horizon for fc in group):
            raise InputError(
                f"{folder}: member {name!r} is a seq2seq model of horizon < {horizon}, whose "
                "forecasts cannot be fed back"
            )
    for m in manifest["members"]:
        m_season = int(m.get("season") or manifest.get("season") or season)
        if m.get("model") == SEASONAL_NAIVE and m_season > n_steps:
            raise InputError(
                f"{folder}: member {m['name']!r} repeats a season of {m_season} steps, longer "
                f"than the window of n_steps={n_steps}; raise n_steps to at least {m_season}"
            )


def _direct(fc: ForecastCore, x: np.ndarray, k: int) -> np.ndarray:
    """``fc``'s ``k``-step forecast ``[B, k]`` of windows ``x``: iterative past its horizon."""
    if k <= fc.horizon:
        return fc.forward(x)[:, :k]
    return iterative_forecast(fc.forward, x, k, "sliding")


def _statsforecast(model: str) -> Callable[..., Any]:
    """statsforecast's class ``model`` (one of :data:`STATISTICAL`)."""
    try:
        from statsforecast import models
    except ImportError:  # the stats extra
        raise ConfigError(
            f"the ensemble's member {model} needs statsforecast: pip install 'seqforecast[stats]'"
        ) from None
    return getattr(models, model)


def _arguments(settings: dict[str, Any]) -> dict[str, Any]:
    """Plain settings as keyword arguments (the orders as tuples)."""
    return {k: tuple(v) if isinstance(v, list) else v for k, v in settings.items()}


def _check_settings(member: dict[str, Any], what: str) -> None:
    """A statistical member's ``settings``: known keys of plain values (:data:`SETTINGS`)."""
    settings = member.get("settings")
    if settings is None:
        return
    allowed = SETTINGS.get(member["model"], {})
    items = settings if isinstance(settings, list) else [settings]
    if not items or not all(isinstance(item, dict) for item in items):
        raise InputError(f"{what}: settings must be a mapping or a non-empty list of them")
    for item in items:
        for key, value in item.items():
            if key not in allowed:
                raise InputError(
                    f"{what}: settings.{key} is not a setting of {member['model']}; expected "
                    f"some of {list(allowed)}"
                )
            ok = {
                "3 integers >= 0": isinstance(value, list)
                and len(value) == 3
                and all(_int(v) and v >= 0 for v in value),
                "an integer >= 1": _int(value) and value >= 1,
                "true or false": isinstance(value, bool),
            }[allowed[key]]
            if not ok:
                raise InputError(f"{what}: settings.{key}={value!r}; expected {allowed[key]}")


def _int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def read_manifest(folder: Path) -> dict[str, Any]:
    """The folder's manifest, checked: format, rule, horizon, members and their files."""
    path = folder / MANIFEST
    try:
        manifest = json.loads(path.read_text())
    except FileNotFoundError:
        raise InputError(f"ensemble manifest not found: {path}") from None
    except (OSError, ValueError) as err:
        raise InputError(f"{path} is not a JSON manifest ({err})") from None

    def bad(key: str, expected: str) -> InputError:
        got = manifest.get(key) if isinstance(manifest, dict) else manifest
        return InputError(f"{path}: {key}={got!r} is not allowed; expected {expected}")

    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise bad("format", repr(FORMAT))
    if manifest.get("version") != VERSION:
        raise bad("version", f"{VERSION} (written by this version of seqforecast)")
    if manifest.get("combine") not in COMBINES:
        raise bad("combine", f"one of {list(COMBINES)}")
    h = manifest.get("horizon")
    if not isinstance(h, int) or isinstance(h, bool) or h < 1:
        raise bad("horizon", "an integer >= 1")
    members = manifest.get("members")
    if not isinstance(members, list) or not members:
        raise bad("members", "a non-empty list")
    names = set()
    for i, m in enumerate(members):
        what = f"{path}: members[{i}]"
        if not isinstance(m, dict) or not isinstance(m.get("name"), str) or m["name"] in names:
            raise InputError(f"{what} needs a unique name")
        names.add(m["name"])
        weight = m.get("weight", 1.0)
        if not isinstance(weight, int | float) or isinstance(weight, bool) or not weight >= 0:
            raise InputError(f"{what} ({m['name']}): weight={weight!r}; expected a number >= 0")
        if ("model" in m) == ("checkpoints" in m):
            raise InputError(f"{what} ({m['name']}) needs either checkpoints or model")
        if "model" in m and m["model"] not in STATISTICAL:
            raise InputError(f"{what}: model={m['model']!r}; expected one of {list(STATISTICAL)}")
        if "model" in m:
            _check_settings(m, f"{what} ({m['name']})")
        files = m.get("checkpoints", ["-"])
        if not isinstance(files, list) or not files:
            raise InputError(f"{what} ({m['name']}): checkpoints must be a non-empty list")
        for file in files if "checkpoints" in m else []:
            _member_file(folder, file, what)
    if not sum(float(m.get("weight", 1.0)) for m in members) > 0:
        raise bad("members", "weights that are not all 0")
    return manifest


def _member_file(folder: Path, file: Any, what: str) -> Path:
    """A member's file, relative to and inside ``folder``, present."""
    if not isinstance(file, str) or not file:
        raise InputError(f"{what}: checkpoints holds {file!r}; expected file names")
    path = folder / file
    if not path.resolve().is_relative_to(folder.resolve()):
        raise InputError(f"{what}: {file} points outside the ensemble's folder {folder}")
    if not path.exists():
        raise InputError(f"{what}: member file not found: {path}")
    return path


def load_ensemble(path: str | Path, load_member: Loader) -> EnsembleForecaster:
    """The ensemble of folder ``path`` (or its manifest), its checkpoints read by
    ``load_member`` (``load_checkpoint`` on a device, or ``OnnxForecaster`` for an export).

    Raises:
        InputError: The manifest or a member is missing or malformed, or the networks do not
            share their data settings and scaling.
    """
    folder = Path(path)
    folder = folder.parent if folder.name == MANIFEST else folder
    manifest = read_manifest(folder)
    networks = {
        m["name"]: [load_member(folder / f) for f in m["checkpoints"]]
        for m in manifest["members"]
        if "checkpoints" in m
    }
    check_shared([(f"{n}[{i}]", fc) for n, g in networks.items() for i, fc in enumerate(g)])
    return EnsembleForecaster(manifest, networks, folder)


def check_shared(members: list[tuple[str, ForecastCore]]) -> None:
    """Members forecast the same data the same way: equal data settings (but for
    :data:`PER_RUN`), features, series and training scaling; else one line naming two."""
    if not members:
        return
    a, facts = members[0][0], _facts(members[0][1])
    for b, fc in members[1:]:
        for key, value in _facts(fc).items():
            if value != facts.get(key):
                raise InputError(
                    f"ensemble members {a} and {b} differ in {key} ({facts.get(key)!r} vs "
                    f"{value!r}); members must share their data settings and scaling"
                )


def _facts(fc: ForecastCore) -> dict[str, Any]:
    data = {k: v for k, v in (fc.data or {}).items() if k not in PER_RUN}
    scaler = fc.scaler.to_dict() if fc.scaler is not None else None
    return {**{f"data.{k}": v for k, v in data.items()}, "scaler": scaler,
            "features": fc.features, "series": fc.series}  # fmt: skip


def save_ensemble(
    folder: str | Path,
    members: dict[str, Sequence[str | Path] | str],
    horizon: int,
    combine: str = "mean",
    weights: dict[str, float] | None = None,
    season: int | None = None,
    n_steps: int | None = None,
    calibration: intervals.Calibration | None = None,
    data: dict[str, Any] | None = None,
    scaler: Scaler | None = None,
    series: list[tuple[str, ...]] | None = None,
    overwrite: bool = False,
) -> Path:
    """Write an ensemble folder: each network member's checkpoints copied in, the manifest.

    Args:
        folder: The ensemble's folder (created).
        members: Name -> checkpoint paths (a network, its seeds averaged), the name of a
            statistical model (one of :data:`STATISTICAL`), or ``{"model": name,
            "settings": ...}`` with its :data:`SETTINGS` (one dict, or one per series).
        horizon: Steps of the combination's direct forecast.
        combine: ``mean`` (weighted) or ``median``.
        weights: Name -> weight (``mean``); ``None``: equal.
        season: The data's season (statistical members, seasonal naive).
        n_steps: The window the ensemble reads (at least each network's); ``None``: theirs.
        calibration: Conformal widths of the combination, in the model's scale.
        data: Statistical members alone: the data settings a checkpoint would hold.
        scaler: Statistical members alone: the training scaling.
        series: Statistical members alone, scaled per series: the series' id values.
        overwrite: Replace an ensemble already in ``folder``.

    Returns:
        The manifest's path.

    Raises:
        ConfigError: A setting is not allowed.
        OutputError: ``folder`` holds an ensemble and ``overwrite`` is false.
    """
    folder = Path(folder)
    if (folder / MANIFEST).exists() and not overwrite:
        raise OutputError(f"{folder} already holds an ensemble; pass overwrite=true to replace it")
    if combine not in COMBINES:
        raise ConfigError(f"combine={combine!r}; expected one of {list(COMBINES)}")
    entries = []
    for name, what in members.items():
        entry: dict[str, Any] = {"name": name, "weight": float((weights or {}).get(name, 1.0))}
        if isinstance(what, dict):  # a statistical model with its own settings
            what, entry["settings"] = what["model"], what["settings"]
        if isinstance(what, str):
            if what not in STATISTICAL:
                raise ConfigError(f"member {name}: {what!r} is not one of {list(STATISTICAL)}")
            entry |= {"model": what, **({"season": season} if season else {})}
        else:
            files = []
            for i, src in enumerate(what):
                dest = Path("members") / name / f"{i}{Path(src).suffix or '.ckpt'}"
                (folder / dest).parent.mkdir(parents=True, exist_ok=True)
                _copy(Path(src), folder / dest)
                files.append(dest.as_posix())
            entry["checkpoints"] = files
        entries.append(entry)
    manifest: dict[str, Any] = {
        "format": FORMAT,
        "version": VERSION,
        "combine": combine,
        "horizon": int(horizon),
        "members": entries,
    }
    if season:
        manifest["season"] = int(season)
    if n_steps:
        manifest["n_steps"] = int(n_steps)
    if calibration is not None:
        manifest["intervals"] = calibration.to_dict()
    if data is not None:
        manifest["data"] = data
        state: dict[str, Any] = {}
        if scaler is not None:
            state["scaler"] = scaler.to_dict()
        if series:
            state["series"] = [list(k) for k in series]
        manifest["data_state"] = state
    return write_manifest(folder, manifest)


def _copy(src: Path, dest: Path) -> None:
    """``src`` at ``dest``: a hard link where the filesystem allows (no second copy of the
    weights on disk; a checkpoint replaced later is a new file, so the link keeps these), else
    a copy."""
    dest.unlink(missing_ok=True)
    try:
        os.link(src, dest)
    except OSError:
        shutil.copyfile(src, dest)


def write_manifest(folder: Path, manifest: dict[str, Any]) -> Path:
    """``folder``'s manifest, replaced whole (a temporary file renamed into place)."""
    with atomic_open(folder / MANIFEST) as f:
        f.write((json.dumps(manifest, indent=1) + "\n").encode())
    return folder / MANIFEST


def build(cfg: Any) -> dict[str, Any]:
    """The task behind ``scripts/ensemble.py`` (``conf/ensemble.yaml``): ``cfg.members`` saved
    as one ensemble in ``cfg.output_dir``, its conformal widths at ``cfg.levels`` calibrated
    on the combination's own val errors (:meth:`EnsembleForecaster.calibrate`).

    Args:
        cfg: ``members``, ``combine``, ``weights``, ``horizon``, ``season``, ``n_steps``,
            ``levels``, ``overwrite`` and ``output_dir``.

    Returns:
        ``{"folder", "manifest", "description"}``.

    Raises:
        ConfigError: A setting is not allowed, or no member is a network.
        InputError: A checkpoint is missing or unsafe, or the members do not share their data.
        OutputError: ``output_dir`` holds an ensemble and ``overwrite`` is false.
    """
    from omegaconf import OmegaConf

    from seqforecast.intervals import check_levels
    from seqforecast.predict.forecaster import load_checkpoint

    if OmegaConf.is_missing(cfg, "members"):
        raise ConfigError("members is required: 'members={gru:[a.ckpt,b.ckpt],ets:AutoETS}'")
    members = OmegaConf.to_container(cfg.members) if OmegaConf.is_config(cfg.members) else None
    if not isinstance(members, dict) or not members:
        raise ConfigError(
            f"members={cfg.members!r}: expected a mapping of names to checkpoint lists or "
            "statistical models, e.g. 'members={gru:[a.ckpt,b.ckpt],ets:AutoETS}'"
        )
    for name, what in members.items():
        if isinstance(what, str) and what.endswith(".ckpt"):
            members[name] = what = [what]  # one checkpoint written without brackets
        if not (isinstance(what, str) or (isinstance(what, list) and what)):
            raise ConfigError(f"members.{name}={what!r}: expected checkpoints or a model name")
    for key in ("horizon", "season", "n_steps"):
        value = cfg.get(key)
        if value is not None and (
            not isinstance(value, int) or isinstance(value, bool) or value < 1
        ):
            raise ConfigError(f"{key}={value!r} is not allowed: expected null or an integer >= 1")
    weights = cfg.get("weights")
    weights = OmegaConf.to_container(weights) if OmegaConf.is_config(weights) else weights
    if weights is not None and (not isinstance(weights, dict) or set(weights) - set(members)):
        raise ConfigError(f"weights={weights!r}: expected a mapping of some of {list(members)}")
    nets = {
        n: [load_checkpoint(p, "cpu") for p in w] for n, w in members.items() if isinstance(w, list)
    }
    if not nets:
        raise ConfigError(
            "members: no network checkpoint; an ensemble of statistical models alone needs its "
            "data settings, which scripts/forecast.py saves (its model/ folder)"
        )
    check_shared([(f"{n}[{i}]", fc) for n, g in nets.items() for i, fc in enumerate(g)])
    fcs = [fc for g in nets.values() for fc in g]
    levels = check_levels(list(cfg.get("levels") or []))
    folder = Path(str(cfg.output_dir))
    save_ensemble(
        folder,
        members,
        cfg.get("horizon") or min(fc.horizon for fc in fcs),
        combine=cfg.get("combine", "mean"),
        weights=weights,
        season=cfg.get("season") or fcs[0].season,
        n_steps=cfg.get("n_steps"),
        overwrite=bool(cfg.get("overwrite", False)),
    )
    manifest = read_manifest(folder)
    ensemble = EnsembleForecaster(manifest, nets, folder)  # the members' checks, as at load
    if levels:
        manifest["intervals"] = ensemble.calibration_for(levels, "conformal").to_dict()
        write_manifest(folder, manifest)
    parts = ", ".join(
        f"{m['name']} ({_count(len(m['checkpoints']), 'checkpoint')})"
        if "checkpoints" in m
        else m["name"]
        for m in manifest["members"]
    )
    line = f"ensemble: {manifest['combine']} of {parts}; horizon {manifest['horizon']}"
    return {"folder": str(folder), "manifest": manifest, "description": line}


def _count(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")

"""Export a checkpoint's point forecast to ONNX or TorchScript, with a JSON sidecar.

``export_model(ckpt, out, "onnx")`` writes ``<out>/model.onnx`` (``"torchscript"``:
``model.pt``) and ``<out>/model.json``: what a program without this package needs to run it
(window length, horizon, features, scaler constants, conformal widths; :func:`sidecar`).
The exported graph is :class:`PointForecast` on the plain torch layers (the fast layers are
never swapped in), ``x [batch, n_steps, F] -> [batch, k]``, with a dynamic batch dimension.

ONNX comes from ``torch.onnx.export``'s TorchScript-based exporter (``dynamo=False``) unless
``dynamo=True``. The former writes ONNX's own RNN/GRU/LSTM operators and keeps the time axis
dynamic too, so growing windows can be fed back; ``torch.export`` specialises the recurrent
layers to the example's length, so its graphs take exactly ``n_steps`` steps. Nets whose
window is fixed whatever the exporter (:data:`FIXED_WINDOW`) are exported with a fixed time
axis, so a runtime refuses other lengths instead of computing something else.
"""

from __future__ import annotations

import hashlib
import io
import json
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn

import seqforecast
from seqforecast import intervals
from seqforecast.data.files import FileDataModule
from seqforecast.ensemble import MANIFEST, is_ensemble, read_manifest, write_manifest
from seqforecast.errors import ConfigError, InputError
from seqforecast.module import ForecastModule
from seqforecast.outputs import atomic_open
from seqforecast.predict.checkpoint import build_module, read_checkpoint

FORMATS = {"onnx": "model.onnx", "torchscript": "model.pt"}
SIDECAR = "model.json"
INPUT, OUTPUT = "x", "forecast"
OPSET = 17  # onnxruntime >= 1.17 runs it; LayerNormalization is one operator from 17 on
# Nets whose exported graph takes exactly n_steps steps: the linear model flattens the
# window, and the layer-normalised RNN's step loop is unrolled when it is traced.
FIXED_WINDOW = ("linear", "ln_rnn")
# Largest |ONNX - torch| accepted by the check after export: far above float32 rounding
# (1e-7..1e-5 on these nets), far below a wrong graph.
VERIFY_TOL = 1e-3
# Known-benign warnings of the exporters, silenced by message during an export only: the
# TorchScript-based exporter and TorchScript itself announce their deprecation, and the recurrent
# layers warn that a dynamic batch *might* need h0 as an input (the tests check batches
# 1, 7 and 1000 against torch).
BENIGN = (
    "You are using the legacy TorchScript-based ONNX export",
    "The feature will be removed",
    "Exporting a model to ONNX with a batch_size other than 1",
    r"`torch\.jit\.(trace|trace_method|save)` is deprecated",
    "Constant folding - Only steps=1 can be constant folded",  # a missed folding, not an error
    "The tensor attributes .* were assigned during export",  # nn.RNN's cached weight list
)
RNN_MODULE = r"torch\.nn\.modules\.rnn"
# The ONNX model's own metadata entry: the shapes and settings its sidecar must repeat, so a
# sidecar edited by hand (or paired with another export's model) is caught on load even where
# the graph's time axis is dynamic and its declared shapes cannot tell.
METADATA = "seqforecast"
METADATA_KEYS = ("n_steps", "horizon", "n_features", "target", "fixed_window")


class PointForecast(nn.Module):
    """:meth:`ForecastModule.forecast` as a plain module: ``x [B, T, F] -> [B, k]``.

    The network's point forecast (for ``quantile``/``gaussian`` losses the median or mean),
    and for seq2seq nets the last step's ``k`` outputs. It holds the net and the loss's
    point reader, not the LightningModule, so tracers never touch Lightning's properties.
    """

    def __init__(self, module: ForecastModule) -> None:
        super().__init__()
        self.net, self.objective = module.net, module.objective
        self.seq2seq = module.hparams.target == "seq2seq"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.objective.point(self.net(x))  # [B, (T,) k * P] -> [B, (T,) k]
        return y[:, -1] if self.seq2seq else y  # [B, k]


def fixed_window(net: str, fmt: str, dynamo: bool) -> bool:
    """Whether the exported graph takes exactly ``n_steps`` steps (no growing windows)."""
    return net in FIXED_WINDOW or (fmt == "onnx" and dynamo)


def check_format(fmt: Any, dynamo: Any = False) -> str:
    if fmt not in FORMATS:
        raise ConfigError(f"format must be one of {list(FORMATS)}, got {fmt!r}")
    if not isinstance(dynamo, bool):
        raise ConfigError(f"dynamo must be true or false, got {dynamo!r}")
    if dynamo and fmt != "onnx":
        raise ConfigError("dynamo=true picks the ONNX exporter; it needs format=onnx")
    return fmt


@contextmanager
def quiet_exporters() -> Iterator[None]:
    """Silence :data:`BENIGN` (by message) for the export inside, and nothing else."""
    with warnings.catch_warnings():
        for message in BENIGN:
            warnings.filterwarnings("ignore", message=message)
        # nn.RNN's own checks of its input and state sizes, fixed by the weights anyway
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning, module=RNN_MODULE)
        yield


def with_metadata(model: bytes, facts: dict[str, Any]) -> bytes:
    """``model`` with ``facts`` (JSON) as its :data:`METADATA` metadata entry."""
    import onnx

    proto = onnx.load_from_string(model)
    entry = proto.metadata_props.add()
    entry.key, entry.value = METADATA, json.dumps(facts, sort_keys=True)
    return proto.SerializeToString()


def onnx_bytes(wrapper: PointForecast, example: torch.Tensor, fixed: bool, dynamo: bool) -> bytes:
    """The ONNX model of ``wrapper`` traced on ``example [2, T, F]``: dynamic batch, and a
    dynamic time axis unless ``fixed``."""
    try:
        import onnxscript  # noqa: F401  (torch.onnx needs it for both exporters)
    except ImportError:
        raise ConfigError(
            "format=onnx needs the onnx and onnxscript packages: pip install 'seqforecast[export]'"
        ) from None
    with quiet_exporters():
        if dynamo:
            shapes = {INPUT: {0: torch.export.Dim("batch")}}
            program = torch.onnx.export(
                wrapper, (example,), dynamo=True, dynamic_shapes=shapes, opset_version=18,
                input_names=[INPUT], output_names=[OUTPUT],
            )  # fmt: skip
            return program.model_proto.SerializeToString()
        axes = {INPUT: {0: "batch"} if fixed else {0: "batch", 1: "time"}, OUTPUT: {0: "batch"}}
        buffer = io.BytesIO()
        torch.onnx.export(
            wrapper, (example,), buffer, dynamo=False, opset_version=OPSET,
            input_names=[INPUT], output_names=[OUTPUT], dynamic_axes=axes,
        )  # fmt: skip
        return buffer.getvalue()


def torchscript_bytes(wrapper: PointForecast, example: torch.Tensor) -> bytes:
    """``torch.jit.trace`` of ``wrapper`` on ``example``, saved (batch and time stay free
    for every net except :data:`FIXED_WINDOW`'s, whose traced window is ``n_steps``)."""
    buffer = io.BytesIO()
    with quiet_exporters():
        torch.jit.save(torch.jit.trace(wrapper, example), buffer)
    return buffer.getvalue()


def verify_onnx(model: bytes, wrapper: PointForecast, n_steps: int, n_features: int) -> float:
    """Largest ``|onnxruntime - torch|`` over 16 seeded random windows ``[16, n_steps, F]``;
    a wrong graph (not a rounding difference) is an error."""
    import onnxruntime as ort

    x = np.random.default_rng(0).standard_normal((16, n_steps, n_features)).astype(np.float32)
    session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    got = session.run(None, {INPUT: x})[0]
    with torch.inference_mode():
        want = wrapper(torch.from_numpy(x)).numpy()
    diff = float(np.abs(got - want).max())
    if not diff <= VERIFY_TOL:
        raise InputError(
            f"the exported ONNX model differs from torch by {diff:g} (> {VERIFY_TOL:g}) on "
            "random windows; this model does not export faithfully"
        )
    return diff


def sidecar(
    ckpt: dict[str, Any], module: ForecastModule, fmt: str, fixed: bool, dynamo: bool
) -> dict[str, Any]:
    """``model.json``: the model's shapes and settings, the data's scaler and columns, the
    conformal widths, and how the file was made (plain JSON values)."""
    hp = dict(module.hparams)
    loss = hp.get("loss", "mse")
    state = ckpt.get(FileDataModule.__qualname__) or {}
    data = ckpt.get("datamodule_hyper_parameters")
    features = list(state.get("columns", [])) or None
    stored = ckpt.get(intervals.CHECKPOINT_KEY)
    cal, note = None, None
    if stored is not None:
        cal = intervals.Calibration.from_dict(stored, "checkpoint", hp["horizon"]).to_dict()
        if cal["method"] != "conformal":
            note = (
                f"the checkpoint's intervals={stored['method']} read the model's quantiles; "
                "only the point forecast is exported, so they are not"
            )
            cal = None
    time = "time" if not fixed else hp["n_steps"]
    exporter = "torch.export (dynamo)" if dynamo else "TorchScript-based"
    return {
        "format": fmt,
        "file": FORMATS[fmt],
        "seqforecast_version": seqforecast.__version__,
        "torch_version": torch.__version__,
        "exporter": f"torch.onnx.export, {exporter}" if fmt == "onnx" else "torch.jit.trace",
        "input": {"name": INPUT, "shape": ["batch", time, hp["n_features"]], "dtype": "float32"},
        "output": {"name": OUTPUT, "shape": ["batch", hp["horizon"]], "dtype": "float32"},
        "forecast": "point" if loss == "mse" else ("median" if loss == "quantile" else "mean"),
        "n_steps": hp["n_steps"],
        "horizon": hp["horizon"],
        "target": hp["target"],
        "n_features": hp["n_features"],
        # the data's season (1: none or not stored); the module keeps it for window_norm=seasonal
        "season": int((data or {}).get("season") or hp.get("season") or 1),
        "fixed_window": fixed,
        "features": features,
        "net": hp["net"],
        "loss": loss,
        "hyper_parameters": hp,
        "data": dict(data) if isinstance(data, dict) else None,
        "data_state": dict(state) or None,
        "intervals": cal,
        "intervals_note": note,
    }


def existing_export(out: Path) -> list[str]:
    """The export files already in ``out`` (a model file of either format, a sidecar)."""
    return [name for name in (*FORMATS.values(), SIDECAR) if (out / name).exists()]


def write_export(out: Path, model_name: str, model: bytes, info: dict[str, Any]) -> None:
    """Both files, each through a temporary file: nothing is renamed into place until both
    are complete, then the model file and the sidecar are renamed one after the other. The
    sidecar holds the model's SHA-256, so a sidecar paired with another model file (say, a
    process killed between the two renames) is refused by the loader, not run."""
    with atomic_open(out / SIDECAR) as side, atomic_open(out / model_name) as f:
        f.write(model)
        side.write((json.dumps(info, indent=2) + "\n").encode())
    for stale in set(FORMATS.values()) - {model_name}:  # the other format's model, replaced
        (out / stale).unlink(missing_ok=True)


def export_model(
    ckpt_path: str | Path,
    out_dir: str | Path,
    format: str = "onnx",
    dynamo: bool = False,
    overwrite: bool = False,
) -> list[Path]:
    """Export the checkpoint's point forecast; returns ``[model file, model.json]``.

    Uses the plain torch layers. ONNX exports are checked once against torch on random
    windows (:func:`verify_onnx`, the largest difference goes into the sidecar). A folder
    that already holds an export is refused unless ``overwrite``; then both files are
    replaced (:func:`write_export`). A failed export leaves ``out_dir`` as it was.
    """
    fmt = check_format(format, dynamo)
    if not isinstance(overwrite, bool):
        raise ConfigError(f"overwrite must be true or false, got {overwrite!r}")
    if is_ensemble(ckpt_path):
        return export_ensemble(ckpt_path, out_dir, fmt, dynamo, overwrite)
    out = Path(out_dir)
    found = existing_export(out)
    if found and not overwrite:
        raise ConfigError(
            f"{out} already holds an export ({', '.join(found)}); pick another folder "
            "(hydra.run.dir=...) or pass overwrite=true to replace it"
        )
    ckpt = read_checkpoint(ckpt_path)
    module = build_module(ckpt, ckpt_path).eval()  # built with the plain layers
    wrapper = PointForecast(module).eval()
    hp = module.hparams
    fixed = fixed_window(hp.net, fmt, dynamo)
    example = torch.zeros(2, hp.n_steps, hp.n_features)  # batch 1 would be specialised
    info = sidecar(ckpt, module, fmt, fixed, dynamo)
    if fmt == "onnx":
        model = onnx_bytes(wrapper, example, fixed, dynamo)
        model = with_metadata(model, {k: info[k] for k in METADATA_KEYS})
        info["verified_max_abs_diff"] = verify_onnx(model, wrapper, hp.n_steps, hp.n_features)
    else:
        model = torchscript_bytes(wrapper, example)
    info["sha256"] = hashlib.sha256(model).hexdigest()
    write_export(out, FORMATS[fmt], model, info)
    return [out / FORMATS[fmt], out / SIDECAR]


def export_ensemble(
    folder: str | Path, out_dir: str | Path, fmt: str, dynamo: bool, overwrite: bool
) -> list[Path]:
    """An ensemble folder as its network members' exports (``members/<name>/<i>/``, each a
    model file and its sidecar, :func:`export_model`) plus the manifest pointing at them;
    statistical members stay names (refitted at each forecast). Returns ``[manifest]``.

    ``OnnxForecaster`` (:func:`seqforecast.onnx.load_onnx`) loads the result as an ensemble.
    """
    if fmt != "onnx":
        raise ConfigError(f"format={fmt}: an ensemble exports as ONNX members only (format=onnx)")
    folder, out = Path(folder), Path(out_dir)
    folder = folder.parent if folder.name == MANIFEST else folder
    manifest = read_manifest(folder)
    if (out / MANIFEST).exists() and not overwrite:
        raise ConfigError(
            f"{out} already holds an export ({MANIFEST}); pick another folder "
            "(hydra.run.dir=...) or pass overwrite=true to replace it"
        )
    for member in manifest["members"]:
        if "checkpoints" in member:
            files = []
            for i, ckpt in enumerate(member["checkpoints"]):
                dest = Path("members") / member["name"] / str(i)
                export_model(folder / ckpt, out / dest, fmt, dynamo, overwrite)
                files.append(dest.as_posix())
            member["checkpoints"] = files
    return [write_manifest(out, manifest)]


def export(cfg: DictConfig) -> dict[str, Any]:
    """The task behind ``scripts/export.py``: export ``cfg.ckpt_path`` into ``cfg.output_dir``.

    Returns ``{"files": [...], "sidecar": {...}, "description": "exported: ..."}`` (an
    ensemble: ``"manifest"`` instead of ``"sidecar"``).
    """
    if OmegaConf.is_missing(cfg, "ckpt_path") or not cfg.ckpt_path:
        raise ConfigError("ckpt_path is required: ckpt_path=outputs/<run>/checkpoints/best.ckpt")
    paths = export_model(
        cfg.ckpt_path,
        cfg.output_dir,
        cfg.format,
        cfg.get("dynamo", False),
        cfg.get("overwrite", False),
    )
    info = json.loads(paths[-1].read_text())
    if paths[-1].name == MANIFEST:
        names = ", ".join(m["name"] for m in info["members"])
        line = f"exported: an ensemble ({info['combine']} of {names}; horizon={info['horizon']})"
        return {"files": [str(p) for p in paths], "manifest": info, "description": line}
    line = (
        f"exported: {info['net']} ({info['target']}, n_steps={info['n_steps']}, "
        f"horizon={info['horizon']}) as {info['format']}, {info['forecast']} forecast"
    )
    return {"files": [str(p) for p in paths], "sidecar": info, "description": line}

"""The training loop keeps Lightning's contract: each setting does what Lightning documents.

One ``training_step`` per batch and automatic optimization, so batch limits, step counts,
periodic checkpoints, per-batch hooks, gradient accumulation and clipping, validation
intervals, mixed precision and learning-rate schedules are the Trainer's own. The data:
64 training series in batches of 8, i.e. 8 batches an epoch.
"""

from __future__ import annotations

import ast
import copy
import math
import os
import signal
import warnings
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from lightning.pytorch.callbacks import Callback, ModelCheckpoint

from seqforecast.callbacks import TrainingInterrupted
from seqforecast.data.batches import BatchIndexSampler
from seqforecast.fast import use_layers
from seqforecast.models.init import adam_eps
from seqforecast.train import instantiate, train

SRC = Path(__file__).resolve().parents[1] / "src" / "seqforecast"
SMALL = ["data.batch_size=8", "callbacks=none"]
BATCHES = 8  # per epoch


class Recorder(Callback):
    """Counts batches, validations and optimizer steps; records the learning rate per batch."""

    def __init__(self) -> None:
        self.batch_ends: list[tuple[int, int]] = []  # (epoch, batch_idx)
        self.validations: list[int] = []  # global step of each validation (no sanity check)
        self.lrs: list[float] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.lrs.append(trainer.optimizers[0].param_groups[0]["lr"])

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.batch_ends.append((trainer.current_epoch, batch_idx))

    def on_validation_end(self, trainer, pl_module) -> None:
        if not trainer.sanity_checking:
            self.validations.append(trainer.global_step)


def _fit(
    make_cfg, *overrides: str, callbacks: tuple[Callback, ...] = (), tiny: bool = True
) -> tuple[Any, Any]:
    """Fit the configured model with ``callbacks`` (and no others): ``(trainer, module)``."""
    cfg = make_cfg(*SMALL, *overrides, tiny=tiny)
    L.seed_everything(cfg.seed, verbose=False)
    datamodule = instantiate(cfg.data)
    module = instantiate(cfg.model, n_features=datamodule.n_features)
    use_layers(module, cfg.layers)
    trainer = instantiate(cfg.trainer, callbacks=list(callbacks), logger=False)
    trainer.fit(module, datamodule=datamodule)
    return trainer, module


@pytest.mark.parametrize(("limit", "per_epoch"), [("3", 3), ("0.5", 4)])
def test_limit_train_batches_int_and_fraction(make_cfg, limit: str, per_epoch: int) -> None:
    rec = Recorder()
    trainer, _ = _fit(
        make_cfg, "trainer.max_epochs=2", f"trainer.limit_train_batches={limit}", callbacks=(rec,)
    )
    assert trainer.global_step == 2 * per_epoch
    assert rec.batch_ends == [(e, b) for e in range(2) for b in range(per_epoch)]


def test_max_steps_stops_mid_epoch(make_cfg) -> None:
    rec = Recorder()
    trainer, _ = _fit(make_cfg, "trainer.max_epochs=20", "trainer.max_steps=11", callbacks=(rec,))
    assert trainer.global_step == 11 and len(rec.batch_ends) == 11
    assert rec.batch_ends[-1] == (1, 2)  # 8 in epoch 0, 3 in epoch 1


def test_on_train_batch_end_once_per_batch(make_cfg) -> None:
    rec = Recorder()
    trainer, _ = _fit(make_cfg, "trainer.max_epochs=3", callbacks=(rec,))
    assert rec.batch_ends == [(e, b) for e in range(3) for b in range(BATCHES)]
    assert trainer.global_step == 3 * BATCHES


def test_every_n_train_steps_writes_its_checkpoints(make_cfg, tmp_path: Path) -> None:
    every = ModelCheckpoint(
        dirpath=tmp_path / "steps",
        filename="step{step}",
        every_n_train_steps=5,
        save_top_k=-1,
        auto_insert_metric_name=False,
    )
    trainer, _ = _fit(make_cfg, "trainer.max_epochs=2", callbacks=(every,))
    assert trainer.global_step == 16
    names = sorted(p.name for p in (tmp_path / "steps").iterdir())
    assert names == sorted(f"step{s}.ckpt" for s in (5, 10, 15))
    assert torch.load(tmp_path / "steps" / "step10.ckpt", weights_only=True)["global_step"] == 10


@pytest.mark.parametrize(("interval", "at"), [("3", [3, 6, 11, 14]), ("0.5", [4, 8, 12, 16])])
def test_val_check_interval_int_and_fraction(make_cfg, interval: str, at: list[int]) -> None:
    rec = Recorder()
    _fit(
        make_cfg, "trainer.max_epochs=2", f"trainer.val_check_interval={interval}", callbacks=(rec,)
    )
    assert rec.validations == at


def _hand_loop(cfg, net: torch.nn.Module, epochs: int, accumulate: int, clip: float | None):
    """Plain torch: the same data order and Adam; each step on ``accumulate`` batches at once."""
    dm = instantiate(cfg.data)
    dm.setup()
    x, y = dm.splits["train"].x, dm.splits["train"].y
    opt = torch.optim.Adam(net.parameters(), lr=cfg.model.lr, eps=adam_eps(cfg.model.init, None))
    sampler = BatchIndexSampler(len(x), cfg.data.batch_size, seed=cfg.seed)
    for epoch in range(epochs):
        sampler.set_epoch(epoch)
        batches = list(sampler)
        for i in range(0, len(batches), accumulate):
            idx = torch.cat(batches[i : i + accumulate])  # one batch of accumulate x the size
            loss = F.mse_loss(net(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            if clip:
                torch.nn.utils.clip_grad_norm_(net.parameters(), clip)
            opt.step()
    return net


@pytest.mark.parametrize(("accumulate", "clip"), [(1, None), (2, None), (1, 0.05), (2, 0.05)])
def test_accumulation_and_clipping_match_plain_torch(make_cfg, accumulate: int, clip) -> None:
    overrides = ["model=deep_rnn_dense", "trainer.max_epochs=2"]
    overrides += [f"trainer.accumulate_grad_batches={accumulate}"]
    if clip:
        overrides.append(f"trainer.gradient_clip_val={clip}")
    cfg = make_cfg(*SMALL, *overrides)
    L.seed_everything(cfg.seed, verbose=False)
    start = copy.deepcopy(instantiate(cfg.model, n_features=1).net)  # the same initial weights
    trainer, module = _fit(make_cfg, *overrides)
    assert trainer.gradient_clip_val == clip and trainer.accumulate_grad_batches == accumulate
    assert trainer.global_step == 2 * BATCHES // accumulate
    reference = _hand_loop(cfg, use_layers(start, cfg.layers), 2, accumulate, clip)
    for (name, got), want in zip(
        module.net.state_dict().items(), reference.state_dict().values(), strict=True
    ):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5, msg=name)


@pytest.mark.parametrize("option", ["deep_rnn_dense", "seq2seq", "gru", "ln_rnn", "conv_gru"])
def test_bf16_mixed_trains_on_the_cpu_with_the_default_layers(make_cfg, option: str) -> None:
    cfg = make_cfg(f"model={option}", "trainer.max_epochs=2", "trainer.precision=bf16-mixed")
    metrics = train(cfg)
    assert metrics["epochs"] == 2
    assert all(math.isfinite(metrics[k]) for k in ("val/mse", "test/mse_last"))


@pytest.mark.slow
def test_a_default_sized_run_gives_no_logging_interval_warning(make_cfg) -> None:
    # The chapter's data: 7000 training series, 219 batches an epoch, one step each.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _fit(make_cfg, "trainer.max_steps=2", "trainer.accelerator=cpu", tiny=False)
    messages = [str(w.message) for w in caught]
    assert not [m for m in messages if "logging interval" in m], messages


def _lrs(make_cfg, *overrides: str) -> tuple[list[float], Any]:
    rec = Recorder()
    trainer, _ = _fit(make_cfg, "model.lr=0.01", *overrides, callbacks=(rec,))
    return rec.lrs, trainer


def test_constant_rate_by_default(make_cfg) -> None:
    lrs, _ = _lrs(make_cfg, "trainer.max_epochs=2")
    assert lrs == [0.01] * 16


def test_cosine_follows_its_closed_form(make_cfg) -> None:
    lrs, trainer = _lrs(
        make_cfg, "trainer.max_epochs=3", "scheduler=cosine", "scheduler.eta_min=0.001"
    )
    steps = np.arange(24)
    want = 0.001 + (0.01 - 0.001) * (1 + np.cos(np.pi * steps / 24)) / 2
    np.testing.assert_allclose(lrs, want, rtol=1e-9)
    assert trainer.optimizers[0].param_groups[0]["lr"] == pytest.approx(0.001)


def test_onecycle_rises_to_max_lr_then_anneals(make_cfg) -> None:
    lrs, _ = _lrs(make_cfg, "trainer.max_epochs=5", "scheduler=onecycle", "scheduler.max_lr=0.05")
    total, peak = 40, 0.3 * 40 - 1  # optimizer steps; the peak's step
    start, final = 0.05 / 25, 0.05 / 25 / 1e4

    def cos_between(a: float, b: float, pct: float) -> float:
        return b + (a - b) * (1 + np.cos(np.pi * pct)) / 2

    want = [
        cos_between(start, 0.05, t / peak)
        if t <= peak
        else cos_between(0.05, final, (t - peak) / (total - 1 - peak))
        for t in range(total)
    ]
    np.testing.assert_allclose(lrs, want, rtol=1e-9)
    assert max(lrs) == pytest.approx(0.05, rel=1e-3) and lrs[-1] == pytest.approx(final)
    # torch's own OneCycleLR over the same steps, for a second opinion on the formula.
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.05)
    ref = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.05, total_steps=total)
    torch_lrs = []
    for _ in range(total):
        torch_lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        ref.step()
    np.testing.assert_allclose(lrs, torch_lrs, rtol=1e-6)


def test_plateau_halves_the_rate_after_each_epoch_without_improvement(make_cfg) -> None:
    # threshold 0.99: an epoch counts as better only if it cuts the metric by 99 %.
    overrides = ["trainer.max_epochs=4", "scheduler=plateau", "scheduler.patience=0"]
    lrs, _ = _lrs(make_cfg, *overrides, "scheduler.threshold=0.99")
    per_epoch = [lrs[e * BATCHES : (e + 1) * BATCHES] for e in range(4)]
    assert [set(e) for e in per_epoch] == [{0.01}, {0.01}, {0.005}, {0.0025}]


def test_plateau_needs_the_metric_it_monitors(make_cfg) -> None:
    with pytest.raises(Exception, match="val/nothing"):
        _fit(make_cfg, "trainer.max_epochs=2", "scheduler=plateau", "scheduler.monitor=val/nothing")


def test_early_stopping_stops(make_cfg, tmp_path: Path) -> None:
    # min_delta 1.0: no epoch after the first can improve by that much.
    cfg = make_cfg(
        "trainer.max_epochs=10",
        "callbacks=early_stopping",
        "callbacks.early_stopping.patience=2",
        "callbacks.early_stopping.min_delta=1.0",
    )
    metrics = train(cfg)
    assert metrics["epochs"] == 3  # epoch 0 sets the best; 1 and 2 fail to beat it by 1.0


def test_bad_scheduler_settings_name_the_key(make_cfg) -> None:
    from seqforecast.errors import ConfigError

    with pytest.raises(ConfigError, match=r"scheduler.factor=1.5 is not allowed"):
        train(make_cfg("scheduler=plateau", "scheduler.factor=1.5"))
    with pytest.raises(ConfigError, match=r"scheduler.name='step' is unknown"):
        train(make_cfg("scheduler.name=step"))


class GradNorms(Callback):
    """The gradient norm each optimizer step applied (after Lightning's clipping)."""

    def __init__(self) -> None:
        self.norms: list[float] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        # Lightning zeroes the gradients before the next step, so these are the ones applied.
        grads = [p.grad for p in pl_module.parameters() if p.grad is not None]
        self.norms.append(torch.linalg.vector_norm(torch.stack([g.norm() for g in grads])).item())


@pytest.mark.parametrize("clip", [None, 1.0])
@pytest.mark.parametrize("precision", ["32-true", "bf16-mixed"])
def test_precision_and_clipping_train(make_cfg, precision: str, clip: float | None) -> None:
    """Every (precision, clipping) pair trains: Adam is fused only in full precision, where
    Lightning's mixed-precision plugin would refuse to clip (it must unscale first)."""
    overrides = ["model=deep_rnn_dense", "model.lr=0.05", "trainer.max_epochs=1"]
    overrides += [f"trainer.precision={precision}", f"trainer.gradient_clip_val={clip or 'null'}"]
    norms = GradNorms()
    trainer, module = _fit(make_cfg, *overrides, callbacks=(norms,))
    assert trainer.precision == precision and trainer.global_step == BATCHES
    assert trainer.optimizers[0].defaults["fused"] is (precision == "32-true")
    assert all(torch.isfinite(p).all() for p in module.parameters())
    assert len(norms.norms) == BATCHES
    if clip is None:  # the data's gradients exceed the clip value, so clipping is seen below
        assert max(norms.norms) > 2.0, norms.norms
    else:
        assert max(norms.norms) <= clip * (1 + 1e-3), norms.norms


@pytest.mark.filterwarnings("ignore:.*AMP with fp16 is not supported on CPU")
def test_adam_is_fused_except_under_mixed_precision() -> None:
    """The rule by plugin: 16-mixed (on the CPU, bf16) and bf16-mixed are mixed precision."""
    from seqforecast.module import ForecastModule

    module = ForecastModule(hidden=[4], n_steps=8)
    assert module.configure_optimizers().defaults["fused"] is True  # no Trainer
    for precision, fused in (("32-true", True), ("bf16-mixed", False), ("16-mixed", False)):
        trainer = L.Trainer(accelerator="cpu", precision=precision, logger=False)
        trainer.strategy.connect(module)
        module.trainer = trainer
        assert module.configure_optimizers().defaults["fused"] is fused, trainer.precision


@pytest.mark.parametrize(
    "overrides",
    [
        ("model=seq2seq",),
        ("model=seq2seq", "model.loss=quantile"),
        ("model=deep_rnn_dense", "model.loss=gaussian"),
    ],
)
def test_trainer_predict_forecasts_the_test_windows(make_cfg, overrides) -> None:
    """``Trainer.predict`` with the DataModule: each test window's direct forecast (the net's
    last step) and, for a probabilistic model, its quantiles, in the windows' order."""
    cfg = make_cfg(*SMALL, *overrides, "data.eval_batch_size=5")  # 16 test windows: 4 batches
    dm = instantiate(cfg.data)
    module = instantiate(cfg.model, n_features=dm.n_features)
    trainer = L.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False)
    batches = trainer.predict(module, datamodule=dm)
    assert len(batches) == 4
    got = {k: torch.cat([b[k] for b in batches]) for k in batches[0]}
    x = torch.from_numpy(dm.arrays("test")[0])  # [16, T, 1]
    with torch.no_grad():  # by hand: the net's outputs, their last step for seq2seq
        point, dist = module(x), module.forward_dist(x)
    seq2seq = cfg.target == "seq2seq"
    point, dist = (point[:, -1], dist[:, -1]) if seq2seq else (point, dist)
    torch.testing.assert_close(got["forecast"], point, rtol=1e-5, atol=1e-6)
    assert got["forecast"].shape == (16, cfg.horizon)
    if cfg.model.loss == "mse":
        assert got.keys() == {"forecast"}
        return
    levels = module.hparams.quantiles
    assert got["quantiles"].shape == (16, cfg.horizon, len(levels))
    if cfg.model.loss == "quantile":  # the net's own quantiles; the median is the forecast
        want = dist
    else:  # gaussian: mean + scale * the normal quantile of each level
        z = torch.distributions.Normal(0.0, 1.0).icdf(torch.tensor(levels))
        want = dist[..., :1] + dist[..., 1:2] * z
    torch.testing.assert_close(got["quantiles"], want, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(got["quantiles"][..., levels.index(0.5)], got["forecast"])


def test_trainer_predict_takes_bare_inputs(make_cfg) -> None:
    """A loader of inputs alone (no targets) predicts the same forecasts."""
    cfg = make_cfg(*SMALL)
    dm = instantiate(cfg.data)
    module = instantiate(cfg.model, n_features=dm.n_features)
    x = torch.from_numpy(dm.arrays("test")[0])
    trainer = L.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False)
    loader = torch.utils.data.DataLoader(x, batch_size=7)
    got = torch.cat([b["forecast"] for b in trainer.predict(module, dataloaders=loader)])
    with torch.no_grad():
        torch.testing.assert_close(got, module(x), rtol=1e-5, atol=1e-6)


@pytest.mark.cuda
def test_16_mixed_with_clipping_trains_on_cuda(make_cfg) -> None:
    metrics = train(
        make_cfg(
            "model=seq2seq",
            "trainer.accelerator=gpu",
            "trainer.max_epochs=2",
            "trainer.precision=16-mixed",
            "trainer.gradient_clip_val=0.5",
        )
    )
    assert math.isfinite(metrics["val/mse"])


def _private_lightning_uses(path: Path) -> list[str]:
    tree = ast.parse(path.read_text())
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(
            ("lightning", "pytorch_lightning")
        ):
            parts = node.module.split(".")
            if any(p.startswith("_") for p in parts) or "model_helpers" in parts:
                found.append(f"{path.name}:{node.lineno} from {node.module}")
            found += [
                f"{path.name}:{node.lineno} {a.name}" for a in node.names if a.name.startswith("_")
            ]
        if (
            isinstance(node, ast.Attribute)
            and node.attr.startswith("_")
            and not node.attr.startswith("__")
            and isinstance(node.value, ast.Name | ast.Attribute)
            and ast.unparse(node.value).split(".")[-1]
            in {"trainer", "optimizer", "pl_module", "fit_loop", "strategy", "module", "model"}
        ):
            found.append(f"{path.name}:{node.lineno} {ast.unparse(node)}")
    return found


def test_no_private_lightning_names_in_src() -> None:
    found = [use for path in sorted(SRC.rglob("*.py")) for use in _private_lightning_uses(path)]
    assert found == []


class SignalAt(Callback):
    """Sends this process SIGINT after optimizer step ``step`` (a stand-in for a scheduler)."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step == self.step:
            os.kill(os.getpid(), signal.SIGINT)


@pytest.mark.slow
@pytest.mark.parametrize("schedule", ["cosine", "onecycle"])
def test_interrupted_scheduled_run_resumes_exactly(make_cfg, tmp_path: Path, schedule: str) -> None:
    # The step schedules learn their length at on_train_start; the loader's position comes
    # back through Lightning's loader state. Both must survive a mid-epoch interruption.
    run = ["model=seq2seq", "trainer.max_epochs=3", "deterministic=true", f"scheduler={schedule}"]
    want = train(make_cfg(*run, f"output_dir={tmp_path / 'whole'}"))
    victim = make_cfg(
        *run,
        f"output_dir={tmp_path / 'cut'}",
        "+callbacks.kill._target_=test_loop.SignalAt",
        "+callbacks.kill.step=5",
    )
    with pytest.raises(TrainingInterrupted, match="SIGINT received: .* at epoch 1 after 2 batches"):
        train(victim)
    got = train(make_cfg(*run, f"resume={tmp_path / 'cut'}"))
    for key in ("val/mse", "val/mse_last", "test/mse", "test/mse_last"):
        assert got[key] == want[key], key

"""Grouped training steps: several optimizer steps per ``training_step`` call, same math.

The module takes one Adam step per batch of each group (manual optimization). These
tests replay the same data order and optimizer in a hand-written loop and compare
the weights, and check that the group size changes nothing but the call count.
"""

from __future__ import annotations

from collections import Counter
from typing import ClassVar

import lightning as L
import pytest
import torch
import torch.nn.functional as F

from seqforecast import module as module_lib
from seqforecast.data.batches import BatchIndexSampler
from seqforecast.models.init import adam_eps
from seqforecast.train import instantiate, train


def _weights(path) -> dict[str, torch.Tensor]:
    state = torch.load(path, weights_only=True)["state_dict"]
    return {k: v for k, v in state.items() if k.startswith("net.")}


def _hand_loop(cfg, epochs: int, clip: float | None) -> dict[str, torch.Tensor]:
    """The same training as ``train(cfg)``: same init, data order and Adam, no Lightning."""
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    dm = instantiate(cfg.data)
    module = instantiate(cfg.model, n_features=1)
    dm.setup()
    x, y = dm.splits["train"]
    net = module.net
    opt = torch.optim.Adam(
        net.parameters(), lr=cfg.model.lr, eps=adam_eps(cfg.model.init, None), fused=True
    )
    sampler = BatchIndexSampler(len(x), cfg.data.batch_size, shuffle=True, seed=cfg.seed)
    for epoch in range(epochs):
        sampler.set_epoch(epoch)
        for idx in sampler:
            loss = F.mse_loss(net(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            if clip:
                torch.nn.utils.clip_grad_norm_(net.parameters(), clip)
            opt.step()
    return {f"net.{k}": v for k, v in net.state_dict().items()}


@pytest.mark.parametrize("clip", [None, 0.05])
def test_grouped_training_equals_a_hand_written_loop(make_cfg, tmp_path, clip) -> None:
    # 64 training series in batches of 16: groups of 3 give calls of 3 and 1 batches.
    overrides = ["model=deep_rnn_dense", "trainer.max_epochs=2", "data.batches_per_call=3"]
    if clip:
        overrides.append(f"trainer.gradient_clip_val={clip}")
    cfg = make_cfg(*overrides)
    train(cfg)
    got = _weights(tmp_path / "checkpoints" / "last.ckpt")
    want = _hand_loop(cfg, epochs=2, clip=clip)
    assert got.keys() == want.keys()
    for key in want:
        torch.testing.assert_close(got[key], want[key], rtol=1e-5, atol=1e-6, msg=key)
    if clip:  # the clip mattered: unclipped training ends elsewhere
        free = _hand_loop(cfg, epochs=2, clip=None)
        assert any(not torch.allclose(free[k], want[k], atol=1e-4) for k in want)


def test_group_size_changes_only_the_call_count(make_cfg, tmp_path) -> None:
    runs = {}
    for per_call in (1, 4, 64):
        out = tmp_path / f"g{per_call}"
        cfg = make_cfg(
            "model=seq2seq",
            "trainer.max_epochs=2",
            "deterministic=true",
            f"data.batches_per_call={per_call}",
            f"output_dir={out}",
        )
        metrics = train(cfg)
        ckpt = torch.load(out / "checkpoints" / "last.ckpt", weights_only=True)
        # 64 series / 16 per batch = 4 optimizer steps per epoch, whatever the grouping.
        assert ckpt["global_step"] == 8 and ckpt["epoch"] == 1  # last.ckpt: the last epoch
        runs[per_call] = metrics
    for key in ("val/mse", "test/mse_last"):
        assert runs[1][key] == runs[4][key] == runs[64][key], key


def test_max_steps_counts_optimizer_steps(make_cfg, tmp_path) -> None:
    # One call holds the epoch's 4 batches; the step limit stops it after the third.
    cfg = make_cfg("model=linear", "+trainer.max_steps=3", "data.batches_per_call=8")
    train(cfg)
    ckpt = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["global_step"] == 3


class StepHookCounter(L.Callback):
    """Counts the per-step hooks Lightning dispatches (on the class: Hydra builds the instance)."""

    calls: ClassVar[Counter] = Counter()

    def on_before_backward(self, trainer, pl_module, loss) -> None:
        self.calls["on_before_backward"] += 1

    def on_after_backward(self, trainer, pl_module) -> None:
        self.calls["on_after_backward"] += 1

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        self.calls["on_before_optimizer_step"] += 1


def test_step_hooks_run_when_overridden_and_both_paths_train_alike(
    make_cfg, tmp_path, monkeypatch
) -> None:
    direct_steps = []
    real_step = module_lib.direct_optimizer_step
    monkeypatch.setattr(
        module_lib, "direct_optimizer_step", lambda opt: (direct_steps.append(1), real_step(opt))
    )
    StepHookCounter.calls.clear()
    runs = {}
    for name, extra in [
        ("direct", []),
        ("hooked", ["+callbacks.step_hooks._target_=test_steps.StepHookCounter"]),
    ]:
        out = tmp_path / name
        train(make_cfg("model=deep_rnn_dense", "trainer.max_epochs=2", f"output_dir={out}", *extra))
        runs[name] = (_weights(out / "checkpoints" / "last.ckpt"), len(direct_steps))
    # 64 series / 16 per batch = 4 optimizer steps per epoch, 2 epochs.
    assert runs["direct"][1] == 8, "no listener: torch's backward and step, called directly"
    assert runs["hooked"][1] == 8, "a listener: every step went through Lightning"
    assert StepHookCounter.calls == dict.fromkeys(module_lib.STEP_HOOKS, 8)
    direct, hooked = runs["direct"][0], runs["hooked"][0]
    for key in direct:
        torch.testing.assert_close(direct[key], hooked[key], rtol=0, atol=0, msg=key)

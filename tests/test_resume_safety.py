"""A resume checks everything first: a refusal leaves the run folder byte-identical, and a
folder killed while writing its first ``last.ckpt`` goes on (never advice in a circle)."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest
import torch
from conftest import MODEL_OPTIONS, TINY, compose_cfg

from seqforecast.data.example import write_example
from seqforecast.errors import ConfigError, InputError
from seqforecast.outputs import atomic_write_text, read_status
from seqforecast.resume import check_resume, resume_checkpoint
from seqforecast.train import instantiate, train

# Deterministic, so a resumed run can be compared with an uninterrupted one exactly.
RUN = ["model=linear", "deterministic=true", "levels=null"]


def snapshot(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` (the lock file too) by its sha256."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def refused(make_cfg, run: Path, error: type[Exception], *overrides: str) -> str:
    """The one-line message of a refused ``train``; the folder is left byte-identical."""
    before = snapshot(run)
    with pytest.raises(error) as err:
        train(make_cfg(*overrides))
    message = str(err.value)
    assert "\n" not in message, message
    assert snapshot(run) == before
    return message


@pytest.fixture(scope="module")
def epoch0(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run that trained one epoch: its best.ckpt and last.ckpt hold the same state."""
    out = tmp_path_factory.mktemp("epoch0")
    train(compose_cfg(out, *RUN, "trainer.max_epochs=1"))
    return out


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """A finished 2-epoch run and its metrics (the uninterrupted reference)."""
    out = tmp_path_factory.mktemp("finished")
    return out, train(compose_cfg(out, *RUN, "trainer.max_epochs=2"))


def killed_in_first_last_write(epoch0: Path, run: Path, staged_bytes: bytes | None = None) -> Path:
    """``run`` as a SIGKILL during the first ``last.ckpt`` write leaves it: a complete
    ``best.ckpt``, the staged file (complete, or ``staged_bytes``), no ``last.ckpt``, status
    ``running``. Returns the staged file."""
    shutil.copytree(epoch0, run, dirs_exist_ok=True)
    ckpts = run / "checkpoints"
    staged = ckpts / ".last.ckpt.k1ll3d.tmp"  # atomic_open's name: .<name>.<random>.tmp
    (ckpts / "last.ckpt").rename(staged)
    if staged_bytes is not None:
        staged.write_bytes(staged_bytes)
    atomic_write_text(run / "status", "running\n")
    return staged


def finished_steps(run: Path) -> int:
    """The optimizer steps of a finished run, from its own last.ckpt."""
    return torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["global_step"]


def _same_scores(got: dict, want: dict) -> None:
    for key in ("val/mse", "val/mse_last", "test/mse", "test/mse_last", "epochs"):
        assert got[key] == want[key], key


# 1. Killed during the first last.ckpt write.


def test_a_complete_staged_last_ckpt_is_verified_and_continued(
    make_cfg, tmp_path, epoch0, finished, caplog
) -> None:
    staged = killed_in_first_last_write(epoch0, tmp_path)
    # A new run is refused and told to resume; the resume it is told to run now works.
    message = refused(make_cfg, tmp_path, ConfigError, *RUN, "trainer.max_epochs=2")
    assert f"continue it with resume={tmp_path}" in message
    got = train(make_cfg(*RUN, "trainer.max_epochs=2", f"resume={tmp_path}"))
    _same_scores(got, finished[1])  # as if never killed
    assert got["resumed_from"] == str(tmp_path / "checkpoints" / "last.ckpt")
    assert f"continuing from {staged}, the complete last.ckpt" in caplog.text
    assert not staged.exists() and read_status(tmp_path) == "finished"
    # Written at the end of training: Lightning's epoch counter then stands at max_epochs.
    last = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)
    assert last["epoch"] == 2 and last["global_step"] == finished_steps(finished[0])


def test_resume_auto_continues_a_folder_killed_in_its_first_last_ckpt_write(
    make_cfg, tmp_path, epoch0
) -> None:
    staged = killed_in_first_last_write(epoch0, tmp_path)
    content = staged.read_bytes()
    # The same command again (max_epochs=1: nothing left to train, scored again).
    got = train(make_cfg(*RUN, "trainer.max_epochs=1", "resume=auto"))
    last = tmp_path / "checkpoints" / "last.ckpt"
    assert got["resumed_from"] == str(last) and last.read_bytes() == content
    assert read_status(tmp_path) == "finished" and not staged.exists()


def test_a_cut_staged_file_is_passed_over_for_best_ckpt(
    make_cfg, tmp_path, epoch0, finished, caplog
) -> None:
    best = epoch0 / "checkpoints" / "best.ckpt"
    cut = (epoch0 / "checkpoints" / "last.ckpt").read_bytes()[:1000]
    staged = killed_in_first_last_write(epoch0, tmp_path, cut)
    got = train(make_cfg(*RUN, "trainer.max_epochs=2", f"resume={tmp_path}"))
    _same_scores(got, finished[1])  # best.ckpt holds the same epoch-0 state
    assert got["resumed_from"] == str(tmp_path / "checkpoints" / best.name)
    assert "the newest checkpoint there that can resume" in caplog.text
    assert staged.read_bytes() == cut  # a file it did not use is left alone


def test_a_folder_with_nothing_that_can_resume_is_refused_untouched(
    make_cfg, tmp_path, epoch0
) -> None:
    killed_in_first_last_write(epoch0, tmp_path, b"cut short")
    best = tmp_path / "checkpoints" / "best.ckpt"
    best.write_bytes(best.read_bytes()[:500])
    message = refused(make_cfg, tmp_path, InputError, *RUN, f"resume={tmp_path}")
    assert "no checkpoints/last.ckpt there, and none of its 2 other checkpoints" in message
    assert "start a new run in another folder" in message


# 2. and 3. A checkpoint trained with other settings.


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        (["model=gru"], "model.net"),  # another network: size mismatch without the check
        (["model.lr=0.01"], "model.lr"),  # same network, another hparam
        (["data.n_series=128", "data.split=[96,16,16]"], "data.n_series"),  # other data
    ],
)
def test_a_checkpoint_of_other_settings_is_refused_untouched(
    make_cfg, tmp_path, finished, overrides, key
) -> None:
    shutil.copytree(finished[0], tmp_path, dirs_exist_ok=True)
    message = refused(
        make_cfg, tmp_path, ConfigError, *RUN, "trainer.max_epochs=3", *overrides,
        f"resume={tmp_path}",
    )  # fmt: skip
    assert "the checkpoint was trained with other settings: " in message
    assert repr(key) in message  # among the settings that differ
    assert read_status(tmp_path) == "finished"


def test_a_file_data_checkpoint_copied_into_a_generated_data_run_is_refused(
    make_cfg, tmp_path, finished
) -> None:
    # Same network (linear, 50 steps, 1 feature), trained on a file.
    csv = write_example(tmp_path / "sine.csv", rows=1000)
    other = tmp_path / "file_run"
    file_data = ["data=csv", f"data.path={csv}", "n_steps=50", "data.batch_size=64"]
    file_data.append("trainer.accelerator=cpu")
    file_run = make_cfg(*RUN, *file_data, "trainer.max_epochs=1", f"output_dir={other}", tiny=False)
    train(file_run)
    check_resume(file_run, other / "checkpoints" / "best.ckpt", instantiate)  # its own run: fine
    run = tmp_path / "run"
    shutil.copytree(finished[0], run)
    shutil.copy(other / "checkpoints" / "best.ckpt", run / "checkpoints" / "last.ckpt")
    for how in (f"resume={run}", "resume=auto"):
        # resume=auto reuses a finished run as it is; an interrupted one it continues.
        atomic_write_text(run / "status", "interrupted: SIGTERM received\n")
        message = refused(
            make_cfg, run, ConfigError, *RUN, "trainer.max_epochs=2", how, f"output_dir={run}"
        )
        assert "the checkpoint was trained with other settings: data." in message
        assert "start a new run" in message


def test_a_copied_in_checkpoint_of_another_network_is_refused_untouched(
    make_cfg, tmp_path, finished
) -> None:
    shutil.copytree(finished[0], tmp_path, dirs_exist_ok=True)
    last = tmp_path / "checkpoints" / "last.ckpt"
    ckpt = torch.load(last, weights_only=True)
    # A consistent checkpoint of a linear net over 20 steps: weights [1, 20].
    ckpt["hyper_parameters"]["n_steps"] = 20
    ckpt["state_dict"] = {
        k: v[..., :20] if v.dim() == 2 else v for k, v in ckpt["state_dict"].items()
    }
    torch.save(ckpt, last)
    message = refused(
        make_cfg, tmp_path, ConfigError, *RUN, "trainer.max_epochs=3", f"resume={tmp_path}"
    )
    assert "model.n_steps is 20 there but 50 in this run" in message


def test_weights_that_do_not_fit_their_own_settings_are_refused_untouched(
    make_cfg, tmp_path, finished
) -> None:
    shutil.copytree(finished[0], tmp_path, dirs_exist_ok=True)
    last = tmp_path / "checkpoints" / "last.ckpt"
    ckpt = torch.load(last, weights_only=True)
    ckpt["state_dict"] = {
        k: v[..., :20] if v.dim() == 2 else v for k, v in ckpt["state_dict"].items()
    }
    torch.save(ckpt, last)
    message = refused(
        make_cfg, tmp_path, InputError, *RUN, "trainer.max_epochs=3", f"resume={tmp_path}"
    )
    assert f"checkpoint {last}: hyper_parameters n_steps=50 do not match its state_dict" in message
    assert f"resume={tmp_path / 'checkpoints' / 'best.ckpt'}" in message  # the good one offered


@pytest.mark.slow
@pytest.mark.parametrize("model", MODEL_OPTIONS)
def test_a_checkpoint_of_the_same_settings_passes_for_every_model(
    make_cfg, tmp_path, model: str
) -> None:
    # The run's own settings, as a checkpoint holds them: the meta-device module the check
    # builds has the same hparams as the real one (no training needed to know that).
    cfg = make_cfg(f"model={model}", "trainer.max_epochs=1")
    datamodule = instantiate(cfg.data)
    module = instantiate(cfg.model, n_features=datamodule.n_features)
    path = tmp_path / "checkpoints" / "last.ckpt"
    path.parent.mkdir()
    ckpt = {
        "hyper_parameters": dict(module.hparams),
        "datamodule_hyper_parameters": dict(datamodule.hparams),
        "state_dict": module.state_dict(),
        "epoch": 0,
        "loops": {"fit_loop": {"epoch_progress": {"current": {"started": 1}}}},
    }
    torch.save(ckpt, path)
    check_resume(cfg, path, instantiate)
    ckpt["hyper_parameters"]["lr"] *= 2
    torch.save(ckpt, path)
    with pytest.raises(ConfigError, match=r"model\.lr is .* there but .* in this run"):
        check_resume(cfg, path, instantiate)


def test_a_checkpoint_of_an_earlier_version_still_resumes(make_cfg, tmp_path) -> None:
    # Its hparams hold impl and clipping settings, no scheduler/loss/quantiles; its data
    # settings hold batches_per_call: all mean what this version's defaults mean.
    shutil.copy(Path(__file__).parent / "data" / "v0" / "seq2seq.ckpt", tmp_path / "old.ckpt")
    cfg = make_cfg("model=seq2seq", "trainer.max_epochs=2")
    check_resume(cfg, tmp_path / "old.ckpt", instantiate)


# 4. Non-finite weights.


def test_a_last_ckpt_with_nan_weights_is_refused_untouched_and_offers_best(
    make_cfg, tmp_path, finished
) -> None:
    shutil.copytree(finished[0], tmp_path, dirs_exist_ok=True)
    last = tmp_path / "checkpoints" / "last.ckpt"
    ckpt = torch.load(last, weights_only=True)
    name = next(iter(ckpt["state_dict"]))
    ckpt["state_dict"][name][..., 0] = float("nan")
    torch.save(ckpt, last)
    for how in (f"resume={tmp_path}", f"resume={last}"):
        message = refused(make_cfg, tmp_path, InputError, *RUN, "trainer.max_epochs=3", how)
        assert f"checkpoint {last}: state_dict tensor {name} holds " in message
        assert f"resume={tmp_path / 'checkpoints' / 'best.ckpt'}" in message
    assert read_status(tmp_path) == "finished"


# 5. Fewer epochs than the checkpoint has trained.


@pytest.mark.parametrize("max_epochs", [0, 1])
def test_a_finished_run_resumed_with_fewer_epochs_is_refused_untouched(
    make_cfg, tmp_path, finished, max_epochs: int
) -> None:
    # 0: Lightning raised MisconfigurationException; 1: it reported 1 epoch for weights of 2.
    shutil.copytree(finished[0], tmp_path, dirs_exist_ok=True)
    message = refused(
        make_cfg, tmp_path, ConfigError, *RUN, f"trainer.max_epochs={max_epochs}",
        f"resume={tmp_path}",
    )  # fmt: skip
    assert message.startswith(f"trainer.max_epochs={max_epochs} is fewer than the 2 epochs")
    assert "resume with trainer.max_epochs=2 or more" in message
    assert read_status(tmp_path) == "finished"


def test_resume_checkpoint_of_a_folder_without_any_checkpoint_says_so(tmp_path) -> None:
    (tmp_path / "config.yaml").write_text("{}\n")
    with pytest.raises(ConfigError, match="no checkpoints/last.ckpt there"):
        resume_checkpoint(str(tmp_path))


def test_a_refusal_writes_no_status_into_a_run_folder_that_lost_its_own(
    make_cfg, tmp_path, finished
) -> None:
    # A fresh folder that fails its checks is marked failed; one holding checkpoints is not.
    shutil.copytree(finished[0], tmp_path, dirs_exist_ok=True)
    (tmp_path / "status").unlink()
    refused(make_cfg, tmp_path, ConfigError, *RUN, "trainer.max_epochs=1", f"resume={tmp_path}")
    assert read_status(tmp_path) is None


def test_the_script_refuses_in_one_line_exit_2_and_leaves_the_folder(
    run_main, tmp_path, finished
) -> None:
    run = tmp_path / "run"
    shutil.copytree(finished[0], run)
    before = snapshot(run)
    result = run_main(
        "train.py", *TINY, *RUN, "trainer.max_epochs=1", f"resume={run}",
        f"hydra.run.dir={tmp_path / 'cli'}", cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr[-2000:]
    assert "error: trainer.max_epochs=1 is fewer than the 2 epochs" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert snapshot(run) == before

"""Lightning ``BatchSizeFinder``: a real Trainer, the module's own training_step, a real cap.

- under ``RLIMIT_AS`` (default allocator settings) in a child: the callback
  finds the ceiling on fit start (a real OOM), sets ``batch_size``, and the
  same ``fit`` trains 20 steps at it;
- the training state is bitwise the same before and after the search (bf16
  autocast through the precision plugin, ``self.log`` in training_step);
- ``global_batch_size`` kept with ``accumulate_grad_batches``;
- two gloo ranks under ``strategy="ddp"`` agree on the smaller ceiling;
- an offline ``WandbLogger`` run read back.

Run as a script (``python tests/test_finder_lightning.py capped|ddp OUT``) it
is the child of the capped and DDP tests.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pl = pytest.importorskip("lightning.pytorch")
from torch import nn  # noqa: E402
from torch.utils.data import DataLoader, TensorDataset  # noqa: E402

from wandb_batchsize.integrations.lightning import BatchSizeFinder  # noqa: E402
from wandb_batchsize.tracking.offline import read_run, scan_run  # noqa: E402

HERE = Path(__file__).resolve()
ROOT = HERE.parents[1]
SEQ, FEATURES, HIDDEN = 32, 16, 1024


def tokens(n: int = 4096) -> TensorDataset:
    """``n`` seeded samples of 32 tokens x 16 features and a class."""
    g = torch.Generator().manual_seed(n)
    return TensorDataset(
        torch.randn(n, SEQ, FEATURES, generator=g), torch.randint(0, 10, (n,), generator=g)
    )


class TokenMLP(pl.LightningModule):
    """A token-wise MLP (about 0.6 MiB of activations a sample); OOM above ``limit`` if set."""

    def __init__(self, batch_size: int = 8, limits: tuple[int, ...] = ()) -> None:
        super().__init__()
        self.save_hyperparameters()
        torch.manual_seed(0)
        self.body = nn.Sequential(
            nn.Linear(FEATURES, HIDDEN), nn.GELU(), nn.Dropout(0.1), nn.Linear(HIDDEN, 10)
        )
        self.norm = nn.BatchNorm1d(10)
        self.step_sizes: list[int] = []

    def forward(self, x):
        limits = self.hparams.limits
        if limits and x.shape[0] > limits[self.global_rank % len(limits)]:
            # a per-rank budget for the DDP test (the capped test's OOM is real)
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return self.norm(self.body(x).mean(dim=1))

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = nn.functional.cross_entropy(self(x), y)
        self.log("train_loss", loss)
        return loss

    def on_train_batch_start(self, batch, batch_idx):
        self.step_sizes.append(batch[0].shape[0])  # the loop's batches, not the probes'

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=1e-2)

    def train_dataloader(self):
        return DataLoader(tokens(), batch_size=self.hparams.batch_size, shuffle=True)


class Snapshot(pl.Callback):
    """Copies of the training state at ``on_fit_start`` (put before / after the finder)."""

    def __init__(self) -> None:
        self.state = None

    def on_fit_start(self, trainer, pl_module):
        scaler = getattr(trainer.precision_plugin, "scaler", None)
        self.state = {
            "model": {k: v.detach().clone() for k, v in pl_module.state_dict().items()},
            "optim": [_clone(o.state_dict()) for o in trainer.optimizers],
            "rng": torch.get_rng_state().clone(),
            "scaler": scaler.state_dict() if scaler is not None else None,
            "training": [m.training for m in pl_module.modules()],
            "step": trainer.global_step,
        }


def _clone(obj):
    if torch.is_tensor(obj):
        return obj.detach().clone()
    if isinstance(obj, dict):
        return {k: _clone(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_clone(v) for v in obj]
    return obj


def assert_same(a, b) -> None:
    if torch.is_tensor(a):
        assert torch.equal(a, b) and a.dtype == b.dtype
    elif isinstance(a, dict):
        assert a.keys() == b.keys()
        for key in a:
            assert_same(a[key], b[key])
    elif isinstance(a, list):
        assert len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            assert_same(x, y)
    else:
        assert a == b


def _trainer(callbacks, **kwargs) -> pl.Trainer:
    options = {
        "accelerator": "cpu",
        "devices": 1,
        "max_steps": 20,
        "logger": False,
        "enable_checkpointing": False,
        "enable_progress_bar": False,
        "enable_model_summary": False,
    }
    options.update(kwargs)
    return pl.Trainer(callbacks=callbacks, **options)


# -- the children ------------------------------------------------------------------------


class CapAtFitStart(pl.Callback):
    """Caps the address space at fit start: what the process holds then + ``mb`` MiB."""

    def __init__(self, mb: float) -> None:
        self.mb = mb

    def on_fit_start(self, trainer, pl_module):
        import resource

        with open("/proc/self/status") as fh:
            vm = next(int(line.split()[1]) * 1024 for line in fh if line.startswith("VmSize"))
        _, hard = resource.getrlimit(resource.RLIMIT_AS)
        resource.setrlimit(resource.RLIMIT_AS, (vm + int(self.mb * 2**20), hard))


def capped_child(out: Path, cap_mb: float) -> None:
    torch.set_num_threads(1)
    warm = TokenMLP(batch_size=16)
    _trainer([], max_steps=3).fit(warm)  # imports, oneDNN kernels, the loop: before the cap
    module = TokenMLP(batch_size=8)
    finder = BatchSizeFinder(
        log_to_wandb=False, verbose=os.environ.get("H3_VERBOSE") == "1", max_batch_size=2048
    )
    trainer = _trainer([CapAtFitStart(cap_mb), finder], max_steps=20)
    report: dict = {}
    try:
        trainer.fit(module)
        report["fit_ok"] = True
    except Exception as exc:  # reported, the test fails on it
        report.update(fit_ok=False, error=f"{type(exc).__name__}: {str(exc)[:300]}")
    result = finder.result
    report.update(
        global_step=trainer.global_step,
        batch_size=module.hparams.batch_size,
        sizes=sorted(set(module.step_sizes[-20:])),
        found=None if result is None else result.batch_size,
        max_fitting=None if result is None else result.max_fitting,
        confirmed=None if result is None else result.confirmed,
        searched=None if result is None else result.searched_batch_size,
        step_downs=None if result is None else list(result.step_downs),
        ooms=None if result is None else result.oom_events,
        probes=None if result is None else len(result.probes),
    )
    out.write_text(json.dumps(report))


def ddp_child(out: Path) -> None:
    torch.set_num_threads(1)
    module = TokenMLP(batch_size=8, limits=(96, 48))
    finder = BatchSizeFinder(
        global_batch_size=128, log_to_wandb=False, verbose=False, tolerance=0, min_batch_size=16
    )
    trainer = _trainer(
        [finder], devices=2, strategy="ddp", max_steps=2, use_distributed_sampler=True
    )
    trainer.fit(module)
    report = {
        "rank": trainer.global_rank,
        "world": trainer.world_size,
        "max_fitting": finder.result.max_fitting,
        "found": finder.result.batch_size,
        "batch_size": module.hparams.batch_size,
        "accumulate": trainer.accumulate_grad_batches,
        "global_step": trainer.global_step,
    }
    (out / f"rank{trainer.global_rank}.json").write_text(json.dumps(report))


def _run_child(*args: str, timeout: float) -> subprocess.CompletedProcess:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("MALLOC_") and k != "PYTEST_CURRENT_TEST"
    }
    env.update(
        PYTHONPATH=str(ROOT),
        OMP_NUM_THREADS="1",
        CUDA_VISIBLE_DEVICES="",
        WANDB_MODE="disabled",
        PL_DISABLE_FORK="1",
    )
    return subprocess.run(
        [sys.executable, str(HERE), *args],
        env=env,
        cwd=str(ROOT),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def read_back(run_dir: Path, wait: float = 30.0):
    """The offline run, once W&B's writer has put its records out (slow on a loaded machine)."""
    deadline = time.monotonic() + wait
    while scan_run(run_dir).problem and time.monotonic() < deadline:
        time.sleep(0.5)
    return read_run(run_dir)


# -- the tests ---------------------------------------------------------------------------


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="RLIMIT_AS is a Linux feature")
@pytest.mark.timeout(240)
def test_the_size_set_on_fit_start_trains_20_steps_under_a_real_cap(tmp_path):
    out = tmp_path / "report.json"
    # 96 MiB: at 64 MiB, on a loaded machine, fit's own allocations beyond the step once
    # failed at the confirmed size (recorded in the issue-13 closing note)
    proc = _run_child("capped", str(out), "96", timeout=220)
    if not out.exists() and proc.returncode == -signal.SIGSEGV:
        # libtorch occasionally segfaults inside a native allocation at an RLIMIT_AS cap
        # (as in test_memory_capped_default.py): that one case is retried once
        proc = _run_child("capped", str(out), "96", timeout=220)
    assert out.exists(), f"rc={proc.returncode}\n" + proc.stdout[-2000:] + proc.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["fit_ok"], report
    assert report["ooms"] >= 1, report  # the ceiling was reached for real
    assert report["confirmed"] and report["batch_size"] == report["found"], report
    assert 16 <= report["max_fitting"] < 2048, report
    assert report["found"] <= 0.9 * report["max_fitting"], report
    assert report["global_step"] == 20, report
    assert report["sizes"] == [report["found"]], report  # every training step at the size set


def test_search_restores_the_state_bitwise_and_keeps_the_global_batch():
    before, after = Snapshot(), Snapshot()
    module = TokenMLP(batch_size=8, limits=(100,))
    finder = BatchSizeFinder(
        global_batch_size=96, verbose=False, log_to_wandb=False, tolerance=0, min_batch_size=16
    )
    trainer = _trainer([before, finder, after], max_steps=4, precision="bf16-mixed")
    trainer.fit(module)
    assert_same(before.state, after.state)
    result = finder.result
    # the search stops at the 96 samples of the global batch (100 would fit): no OOM seen,
    # so no safety factor; 96 x 1
    assert result.max_fitting == 96 and result.first_failing is None
    assert result.batch_size == 96 and result.confirmed
    assert finder.optimal_batch_size == module.hparams.batch_size == 96
    assert trainer.accumulate_grad_batches == finder.accumulate_grad_batches == 1
    assert trainer.global_step == 4 and module.step_sizes[-4:] == [96] * 4
    assert trainer.logged_metrics["train_loss"].isfinite()


def test_fp16_grad_scaler_state_is_put_back():
    from lightning.pytorch.plugins import MixedPrecision

    # fp16 autocast with a GradScaler on the CPU (Lightning's "16-mixed" would pick bf16)
    plugin = MixedPrecision("16-mixed", "cpu", scaler=torch.amp.GradScaler("cpu"))
    before, after = Snapshot(), Snapshot()
    finder = BatchSizeFinder(verbose=False, log_to_wandb=False, tolerance=0, min_batch_size=16)
    trainer = _trainer([before, finder, after], max_steps=2, plugins=[plugin])
    trainer.fit(TokenMLP(limits=(40,)))
    assert before.state["scaler"]["_growth_tracker"] == 0  # the probes' updates are undone
    assert_same(before.state, after.state)
    assert finder.result.max_fitting == 40 and finder.optimal_batch_size == 32


def test_global_batch_is_kept_with_accumulate_grad_batches():
    module = TokenMLP(batch_size=8, limits=(70,))
    finder = BatchSizeFinder(
        global_batch_size=256, verbose=False, log_to_wandb=False, tolerance=0, min_batch_size=16
    )
    trainer = _trainer([finder], max_steps=3)
    trainer.fit(module)
    # fits up to 70: 70 * 0.9 = 63 -> 56; 256 has no divisor in (32, 56]: 32 x 8
    assert finder.result.max_fitting == 70 and finder.result.batch_size == 56
    assert module.hparams.batch_size == 32 and trainer.accumulate_grad_batches == 8
    assert module.hparams.batch_size * trainer.accumulate_grad_batches == 256
    assert module.step_sizes[-24:] == [32] * 24  # 3 optimizer steps x 8 micro-batches


class DataOwned(pl.LightningDataModule):
    def __init__(self) -> None:
        super().__init__()
        self.batch_size = 4

    def train_dataloader(self):
        return DataLoader(tokens(512), batch_size=self.batch_size)


def test_the_datamodule_attribute_is_set_and_bad_input_is_refused():
    module, data = TokenMLP(limits=(40,)), DataOwned()
    del module.hparams["batch_size"]
    finder = BatchSizeFinder(verbose=False, log_to_wandb=False, tolerance=0, min_batch_size=16)
    _trainer([finder], max_steps=2).fit(module, datamodule=data)
    assert data.batch_size == finder.optimal_batch_size == 32  # 40 * 0.9 = 36 -> 32

    bare = TokenMLP()
    del bare.hparams["batch_size"]
    with pytest.raises(ValueError, match="no attribute 'batch_size'"):
        _trainer([BatchSizeFinder(log_to_wandb=False)], max_steps=1).fit(
            bare, train_dataloaders=DataLoader(tokens(64), batch_size=8)
        )
    with pytest.raises(TypeError, match="sets \\[.optimizer.\\] itself"):
        BatchSizeFinder(optimizer=torch.optim.SGD)
    with pytest.raises(TypeError, match="unknown find_batch_size option"):
        BatchSizeFinder(safety=0.5)
    with pytest.raises(ValueError, match="positive integer"):
        BatchSizeFinder(global_batch_size=0)


class Manual(TokenMLP):
    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.automatic_optimization = False

    def training_step(self, batch, batch_idx):
        opt = self.optimizers()
        x, y = batch
        loss = nn.functional.cross_entropy(self(x), y)
        opt.zero_grad()
        self.manual_backward(loss)
        opt.step()


def test_manual_optimization_runs_its_own_step():
    before, after = Snapshot(), Snapshot()
    module = Manual(limits=(60,))
    finder = BatchSizeFinder(verbose=False, log_to_wandb=False, tolerance=0, min_batch_size=16)
    trainer = _trainer([before, finder, after], max_steps=2)
    trainer.fit(module)
    assert_same(before.state, after.state)
    assert finder.result.max_fitting == 60 and module.hparams.batch_size == 48
    assert trainer.global_step == 2


def test_the_answer_is_logged_on_the_wandb_logger_run(wandb_env):
    from conftest import run_dir_of
    from lightning.pytorch.loggers import WandbLogger

    from wandb_batchsize.tracking import keys

    logger = WandbLogger(project="finder-lightning", save_dir=str(wandb_env))
    module = TokenMLP(limits=(50,))
    finder = BatchSizeFinder(global_batch_size=80, verbose=False, tolerance=0, min_batch_size=16)
    _trainer([finder], max_steps=2, logger=logger, log_every_n_steps=1).fit(module)
    run = logger.experiment
    run.finish()
    logged = read_back(run_dir_of(run))
    result = finder.result
    # 50 * 0.9 = 45 -> 40, and 40 divides 80: 40 x 2
    assert logged.summary[keys.BATCH_FINDER_OPTIMAL] == result.batch_size == 40
    assert logged.summary[keys.BATCH_FINDER_MAX_FITTING] == 50
    assert logged.summary[keys.BATCH_FINDER_CONFIRMED] is True
    assert logged.summary["batch_finder/per_device_batch_size"] == 40
    assert logged.summary["batch_finder/accumulation_steps"] == 2
    assert logged.summary["batch_finder/global_batch_size"] == 80
    assert logged.config["batch_size"] == 40
    assert logged.config["batch_size_source"] == "dynamic_finder"
    assert logged.config["accumulate_grad_batches"] == 2
    assert logged.table(keys.BATCH_FINDER_PROBES)["data"]
    assert logged.history_of("train_loss")  # the Trainer's own logging still went to the run


@pytest.mark.skipif(not torch.distributed.is_available(), reason="no torch.distributed")
@pytest.mark.timeout(240)
def test_two_ddp_ranks_agree_on_the_smaller_ceiling(tmp_path):
    proc = _run_child("ddp", str(tmp_path), timeout=220)
    reports = sorted(tmp_path.glob("rank*.json"))
    assert len(reports) == 2, proc.stdout[-2000:] + proc.stderr[-3000:]
    ranks = [json.loads(p.read_text()) for p in reports]
    for r in ranks:
        # rank 1 fits 48, rank 0 fits 96: both take 48 -> 43 -> 40; 64 per rank -> 32 x 2
        assert r["world"] == 2 and r["max_fitting"] == 48 and r["found"] == 40, ranks
        assert r["batch_size"] == 32 and r["accumulate"] == 2, ranks
        assert r["batch_size"] * r["accumulate"] * r["world"] == 128
        assert r["global_step"] == 2, ranks


if __name__ == "__main__":
    mode, target = sys.argv[1], Path(sys.argv[2])
    if mode == "capped":
        capped_child(target, float(sys.argv[3]))
    elif mode == "ddp":
        ddp_child(target)
    else:
        raise SystemExit(f"unknown mode {mode}")

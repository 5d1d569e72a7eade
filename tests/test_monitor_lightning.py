"""Lightning SusceptibilityCallback: a real Trainer, an offline WandbLogger run read back."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import run_dir_of

torch = pytest.importorskip("torch")
L = pytest.importorskip("lightning.pytorch")

from wandb_batchsize.integrations.lightning import SusceptibilityCallback  # noqa: E402
from wandb_batchsize.tracking.offline import read_run  # noqa: E402


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """Tiny models train fastest on one thread, and the CI machine is shared."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _regression(lightning_module: type):
    """Linear regression that keeps every loss its training_step computed."""

    class Regression(lightning_module):
        def __init__(self) -> None:
            super().__init__()
            self.net = torch.nn.Linear(8, 1)
            self.computed: list[float] = []

        def training_step(self, batch, batch_idx):
            x, y = batch
            loss = torch.nn.functional.mse_loss(self.net(x), y)
            self.computed.append(loss.item())
            return loss

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.02)

    return Regression()


def _loader(n: int = 2048, batch_size: int = 8):
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(n, 8, generator=gen)
    y = x @ torch.randn(8, 1, generator=gen) + 0.5 * torch.randn(n, 1, generator=gen)
    return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=batch_size)


def _trainer(module, callback, *, max_steps: int, accumulate: int = 1, logger=False):
    return module.Trainer(
        max_steps=max_steps,
        callbacks=[callback],
        logger=logger,
        accumulate_grad_batches=accumulate,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        num_sanity_val_steps=0,
        log_every_n_steps=50,
    )


def test_lightning_callback_analyses_the_loss_of_each_optimizer_step(wandb_env):
    from lightning.pytorch.loggers import WandbLogger

    torch.manual_seed(0)
    module = _regression(L.LightningModule)
    callback = SusceptibilityCallback(check_every=50, window=1000, max_overhead=None)
    logger = WandbLogger(project="monitor-lightning", save_dir=str(wandb_env))
    _trainer(L, callback, max_steps=200, accumulate=2, logger=logger).fit(module, _loader())
    run = logger.experiment
    run.finish()

    # two micro-batches per optimizer step: the step's loss is their mean
    per_step = np.asarray(module.computed).reshape(-1, 2).mean(axis=1)
    assert callback.n_steps == 200
    np.testing.assert_allclose(callback.values(), per_step, rtol=1e-6)
    assert callback.history_steps == [50, 100, 150, 200]
    final = callback.result()
    assert final is callback.history[-1] and final.n == 200

    logged = read_run(run_dir_of(run))
    assert logged.history_of("susceptibility/step") == [50, 100, 150, 200]
    assert logged.history_of("susceptibility/K_c")[-1] == final.K_c
    for key in ("kappa", "alpha", "tau_int", "p_iid", "significant"):
        assert len(logged.history_of(f"susceptibility/{key}")) == 4, key
    table = logged.table("susceptibility/V_chart_table")
    assert len(table["data"]) == len(final.K_values)
    assert logged.summary["susceptibility/final/K_c"] == final.K_c
    assert logged.summary["susceptibility/final/step"] == 200


def test_the_same_callback_works_with_pytorch_lightning():
    pl = pytest.importorskip("pytorch_lightning")
    callback = SusceptibilityCallback(check_every=30, window=100, log_to_wandb=False)
    assert isinstance(callback, pl.Callback) and isinstance(callback, L.Callback)

    torch.manual_seed(1)
    module = _regression(pl.LightningModule)
    _trainer(pl, callback, max_steps=60).fit(module, _loader())
    np.testing.assert_allclose(callback.values(), module.computed, rtol=1e-6)
    assert callback.result().n == 60


def test_a_short_last_accumulation_window_is_recorded_at_its_full_loss():
    """Issue 14, item 4: 5 batches an epoch with accumulate_grad_batches=2 make steps of
    2, 2 and 1 batches; Lightning divides the last one by 2 as well, the callback must not."""
    callback = SusceptibilityCallback(check_every=1000, window=100, log_to_wandb=False)
    torch.manual_seed(2)
    module = _regression(L.LightningModule)
    trainer = L.Trainer(
        max_epochs=4,
        callbacks=[callback],
        logger=False,
        accumulate_grad_batches=2,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        num_sanity_val_steps=0,
    )
    trainer.fit(module, _loader(n=40, batch_size=8))
    computed = np.asarray(module.computed).reshape(4, 5)
    per_step = np.concatenate([[e[:2].mean(), e[2:4].mean(), e[4]] for e in computed])
    assert callback.n_steps == 12 == trainer.global_step
    np.testing.assert_allclose(callback.values(), per_step, rtol=1e-6)

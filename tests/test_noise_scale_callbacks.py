"""Gradient-noise-scale callbacks in real Lightning and Transformers training, read back from W&B."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from conftest import run_dir_of  # noqa: E402

from wandb_batchsize.tracking.offline import read_run  # noqa: E402


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Tiny models run fastest on one thread, and do not stall on a busy 2-core machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


D, SIGMA = 8, 1.0


def regression_data(n: int, seed: int = 0):
    """Linear-regression data and weights held fixed at w = w* + delta, with the truth."""
    gen = torch.Generator().manual_seed(seed)
    lam = torch.linspace(0.5, 2.0, D)
    w_star = torch.randn(D, generator=gen)
    delta = 0.3 * torch.randn(D, generator=gen)
    x = torch.randn(n, D, generator=gen) * lam.sqrt()
    y = x @ w_star + SIGMA * torch.randn(n, generator=gen)
    G = lam * delta
    grad_sq = float(G @ G)
    trace = float((delta @ (lam * delta) + SIGMA**2) * lam.sum() + grad_sq)
    return x, y, w_star + delta, trace / grad_sq


def assert_logged(run, n_logs: int, every: int, final_b: float) -> None:
    logged = read_run(run_dir_of(run))
    assert logged.history_of("gns/step") == [every * (i + 1) for i in range(n_logs)]
    for key in ("gns/B_simple", "gns/grad_sq", "gns/trace_cov"):
        assert len(logged.history_of(key)) == n_logs, key
    assert logged.history_of("gns/B_simple")[-1] == pytest.approx(final_b)
    step_metrics = {m.get("glob_name"): m.get("step_metric") for m in logged.metrics}
    assert step_metrics["gns/*"] == "gns/step"
    assert logged.summary["gns/B_simple"] == pytest.approx(final_b)


def test_lightning_callback_estimates_and_logs(wandb_env):
    pl = pytest.importorskip("lightning.pytorch")
    from lightning.pytorch.loggers import WandbLogger

    from wandb_batchsize.integrations.lightning import GradientNoiseScaleCallback

    x, y, w, b_true = regression_data(8 * 2 * 150)

    class Regression(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(D, 1, bias=False)
            with torch.no_grad():
                self.lin.weight.copy_(w[None])

        def training_step(self, batch, batch_idx):
            xb, yb = batch
            return 0.5 * ((self.lin(xb)[:, 0] - yb) ** 2).mean()

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.0)  # weights stay at w

    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=8)
    callback = GradientNoiseScaleCallback(log_every=50, decay=None)
    logger = WandbLogger(project="gns-lightning", offline=True, save_dir=str(wandb_env))
    trainer = pl.Trainer(
        max_epochs=1,
        accumulate_grad_batches=2,
        accelerator="cpu",
        devices=1,
        logger=logger,
        callbacks=[callback],
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(Regression(), loader)
    result = callback.result()
    assert result.n_steps == 150
    lo, hi = result.B_simple_interval
    assert lo < b_true < hi
    assert result.B_simple == pytest.approx(b_true, rel=0.3)
    run = logger.experiment
    run.finish()
    assert_logged(run, 3, 50, result.B_simple)


def test_transformers_callback_on_a_tiny_model(offline_run, tmp_path):
    transformers = pytest.importorskip("transformers")
    from wandb_batchsize.integrations.transformers import GradientNoiseScaleCallback

    config = transformers.BertConfig(
        vocab_size=64,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=16,
        num_labels=2,
    )
    torch.manual_seed(0)
    model = transformers.BertForSequenceClassification(config)
    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(0, 64, (4 * 2 * 20, 12), generator=gen)
    labels = torch.ones(len(ids), dtype=torch.long)  # a strong, consistent gradient at init
    dataset = [{"input_ids": i, "labels": lab} for i, lab in zip(ids, labels, strict=True)]
    args = transformers.TrainingArguments(
        output_dir=str(tmp_path / "out"),
        per_device_train_batch_size=4,
        gradient_accumulation_steps=2,
        max_steps=20,
        learning_rate=1e-3,
        report_to="none",
        save_strategy="no",
        logging_steps=1000,
        disable_tqdm=True,
        use_cpu=True,
    )
    callback = GradientNoiseScaleCallback(log_every=10)
    trainer = transformers.Trainer(
        model=model, args=args, train_dataset=dataset, callbacks=[callback]
    )
    trainer.train()
    result = callback.result()
    assert result.n_steps == 20 and result.trace_cov > 0 and result.is_bounded
    assert not callback.monitor.hooks.attached  # hooks removed at the end of training
    offline_run.finish()
    assert_logged(offline_run, 2, 10, result.B_simple)


def test_lightning_skips_the_short_last_accumulation_window():
    """Issue 14, item 4, for the noise scale: with 5 batches an epoch and
    accumulate_grad_batches=2 the third step of each epoch has one micro-batch
    (one batch size only): it is skipped, not measured at a wrong size."""
    pl = pytest.importorskip("lightning.pytorch")
    from wandb_batchsize.integrations.lightning import GradientNoiseScaleCallback

    x, y, w, _ = regression_data(40)

    class Regression(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(D, 1, bias=False)

        def training_step(self, batch, batch_idx):
            xb, yb = batch
            return 0.5 * ((self.lin(xb)[:, 0] - yb) ** 2).mean()

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.01)

    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=8)
    callback = GradientNoiseScaleCallback(log_every=4, log_to_wandb=False)
    trainer = pl.Trainer(
        max_epochs=3,
        accumulate_grad_batches=2,
        accelerator="cpu",
        logger=False,
        callbacks=[callback],
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(Regression(), loader)
    assert trainer.global_step == 9
    assert callback.monitor.n_skipped == 3 and callback.result().n_steps == 6

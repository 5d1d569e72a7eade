"""Real Lightning probes: a new Trainer per size, nothing written, state put back."""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")
pl = pytest.importorskip("lightning.pytorch")
from torch import nn  # noqa: E402
from torch.utils.data import DataLoader, TensorDataset  # noqa: E402

from wandb_batchsize.probe.lightning_probe import BatchSizeProbe  # noqa: E402

SIZES = [8, 16, 32, 64]


def make_data(n: int, seed: int) -> TensorDataset:
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 8, generator=gen)
    y = torch.multinomial(torch.softmax(2 * x[:, :3], dim=1), 1, generator=gen).squeeze(1)
    return TensorDataset(x, y)


TRAIN, VAL = make_data(512, 0), make_data(128, 1)


class Classifier(pl.LightningModule):
    def __init__(self, batch_size: int = 32, lr: float = 0.1) -> None:
        super().__init__()
        self.save_hyperparameters()
        torch.manual_seed(0)
        self.net = nn.Sequential(nn.Linear(8, 16), nn.BatchNorm1d(16), nn.Tanh(), nn.Linear(16, 3))

    def training_step(self, batch, batch_idx):
        x, y = batch
        return nn.functional.cross_entropy(self.net(x), y)

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_loss", nn.functional.cross_entropy(self.net(x), y))

    def configure_optimizers(self):
        opt = torch.optim.SGD(self.parameters(), lr=self.hparams.lr)
        return {"optimizer": opt, "lr_scheduler": torch.optim.lr_scheduler.StepLR(opt, 1000)}


class Data(pl.LightningDataModule):
    def __init__(self) -> None:
        super().__init__()
        self.batch_size = 32

    def train_dataloader(self):
        return DataLoader(TRAIN, batch_size=self.batch_size, shuffle=True, drop_last=True)

    def val_dataloader(self):
        return DataLoader(VAL, batch_size=64)


@pytest.fixture(autouse=True)
def _quiet(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # anything Lightning wrote would land here
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_datamodule_probe_restores_state_and_batch_size_and_writes_nothing(tmp_path):
    model, data = Classifier(), Data()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    rng = torch.get_rng_state()

    result = BatchSizeProbe(
        SIZES, steps_per_size=4, val_metric="val_loss", verbose=False, log_to_wandb=False
    ).run(model, datamodule=data)

    assert result.framework == "lightning" and result.metric == "val_loss"
    rows = result.table()
    assert [r["batch_size"] for r in rows] == SIZES
    assert {r["samples"] for r in rows} == {4 * 64}  # equal samples, counted from the batches
    assert [r["steps"] for r in rows] == [32, 16, 8, 4]
    assert all(r["val_loss"] == r["metric"] and math.isfinite(r["metric"]) for r in rows)
    assert result.K_c in SIZES
    # the module, its batch-size attributes, its trainer link and the RNG are as they were
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())
    assert data.batch_size == 32 and model.hparams.batch_size == 32
    assert model._trainer is None
    assert torch.equal(torch.get_rng_state(), rng)
    assert list(tmp_path.iterdir()) == []  # no lightning_logs, no checkpoints


def test_dataset_input_train_loss_and_lr_scaling_through_configure_optimizers():
    model = Classifier(lr=0.05)
    result = BatchSizeProbe(
        SIZES, budget="steps", steps_per_size=5, lr_scaling="linear", repeats=2,
        verbose=False, log_to_wandb=False,
    ).run(model, train_dataloaders=TRAIN)  # fmt: skip
    assert result.metric == "train_loss"
    rows = result.table()
    assert len(rows) == 8 and {r["steps"] for r in rows} == {5}
    assert [r["samples"] for r in rows if r["repeat"] == 0] == [5 * b for b in SIZES]
    assert [r["lr"] for r in rows if r["repeat"] == 0] == pytest.approx(
        [0.05 * b / 8 for b in SIZES]
    )
    assert list(result.sweep.counts) == [2] * 4
    # seed + repeat: the two repeats differ, the probe is reproducible
    again = BatchSizeProbe(
        SIZES, budget="steps", steps_per_size=5, lr_scaling="linear", repeats=2,
        verbose=False, log_to_wandb=False,
    ).run(model, train_dataloaders=TRAIN)  # fmt: skip
    assert [r.metric for r in again.records] == [r.metric for r in result.records]
    assert rows[0]["metric"] != rows[1]["metric"]


def test_a_datamodule_without_the_batch_attribute_is_refused():
    class NoBatch(pl.LightningDataModule):
        def train_dataloader(self):
            return DataLoader(TRAIN, batch_size=8)

    class Plain(Classifier):
        def __init__(self) -> None:
            pl.LightningModule.__init__(self)
            self.net = nn.Linear(8, 3)

    with pytest.raises(ValueError, match="batch_arg_name"):
        BatchSizeProbe(SIZES, verbose=False).run(Plain(), datamodule=NoBatch())

"""Watch the batch-scale statistics of a Lightning Trainer on the W&B dashboard.

    python examples/lightning_monitor.py          # offline run, CPU, ~20 s

``SusceptibilityCallback`` takes the ``loss`` each ``training_step`` returns
(on its device, no ``.item()``), forms the loss of each optimizer step (here
two accumulated micro-batches), and logs ``susceptibility/*`` against
``susceptibility/step`` (``trainer.global_step``) into the ``WandbLogger``'s run,
with chi(K) / V(K) charts at each check and the final result in the summary.

W&B runs offline unless you set ``WANDB_MODE`` yourself; the script prints the
run folder and the ``wandb sync`` command that uploads it.
"""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("WANDB_MODE", "offline")

import lightning.pytorch as L  # noqa: E402, N812 - the name Lightning uses
import torch  # noqa: E402
from lightning.pytorch.loggers import WandbLogger  # noqa: E402

from wandb_batchsize.integrations.lightning import SusceptibilityCallback  # noqa: E402

STEPS, BATCH = 2000, 32


def make_data(n: int = 8192, seed: int = 0) -> torch.utils.data.TensorDataset:
    """Gaussian inputs, labels sampled from a random teacher's softmax (4 classes)."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 16, generator=gen)
    teacher = torch.randn(16, 4, generator=gen)
    y = torch.multinomial(torch.softmax(2 * x @ teacher, dim=1), 1, generator=gen).squeeze(1)
    return torch.utils.data.TensorDataset(x, y)


class Classifier(L.LightningModule):
    def __init__(self, lr: float = 0.05) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.net = torch.nn.Sequential(
            torch.nn.Linear(16, 64), torch.nn.ReLU(), torch.nn.Linear(64, 4)
        )

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = torch.nn.functional.cross_entropy(self.net(x), y)
        self.log("train/loss", loss)
        return loss

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)


def main() -> None:
    torch.set_num_threads(1)  # a model this small trains fastest on one core
    L.seed_everything(0, verbose=False)
    loader = torch.utils.data.DataLoader(make_data(), batch_size=BATCH, shuffle=True)
    logger = WandbLogger(project="wandb-batchsize-examples", name="lightning-monitor")
    # Streaming over every step; checks every 500 steps whatever they cost (the
    # default cap, 0.8 % of the training time, would space them out on a toy model).
    monitor = SusceptibilityCallback(check_every=500, max_overhead=None)
    trainer = L.Trainer(
        max_steps=STEPS,
        accumulate_grad_batches=2,
        callbacks=[monitor],
        logger=logger,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        log_every_n_steps=100,
    )
    trainer.fit(Classifier(), loader)

    print(monitor.result().summary())
    print(f"checks at steps {monitor.history_steps}")
    run = logger.experiment
    where = Path(run.dir).parent.resolve()
    run.finish()
    if run.settings.mode == "offline":
        print(f"offline run: {where}\nupload it with: wandb sync {where}")


if __name__ == "__main__":
    main()

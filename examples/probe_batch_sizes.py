"""Short training probes at several batch sizes, analysed in sweep mode (CPU, offline).

    python examples/probe_batch_sizes.py

An in-process batch-size sweep: the tiny teacher-student task of
``examples/tiny_task.py`` is trained briefly at batch sizes 8 ... 512, every
probe from the same starting weights with a fresh SGD optimizer, every size
seeing the same number of samples (3 epochs), the learning rate scaled by
sqrt(B / 8), two seeds per size. The validation loss after each probe is
analysed in sweep mode: K_c is where the loss changes fastest with log10(B),
i.e. where, for this data budget, larger batches start to cost accuracy.

W&B runs offline (``WANDB_MODE=offline`` unless set): the run gets a
``probe/table`` of every probe, the ``probe/chi_chart`` and ``probe/V_chart``
custom charts and ``probe/K_c`` in its summary. Takes about 10-20 s on a laptop.
"""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")

import torch  # noqa: E402
import wandb  # noqa: E402
from tiny_task import make_data, make_model  # noqa: E402
from torch.utils.data import TensorDataset  # noqa: E402

import wandb_batchsize as wbs  # noqa: E402


def main() -> None:
    torch.set_num_threads(1)  # tiny models: threads only add overhead
    data = make_data(n_train=4096, n_val=1024)
    model = make_model(data.n_features, data.n_classes, seed=0)

    run = wandb.init(
        project="wandb-batchsize-examples",
        job_type="probe",
        settings=wandb.Settings(console="off", x_disable_stats=True, disable_git=True),
    )
    result = wbs.probe_batch_sizes(
        model,
        TensorDataset(data.x_train, data.y_train),
        torch.nn.functional.cross_entropy,
        batch_sizes=[8, 16, 32, 64, 128, 256, 512],
        samples_per_size=3 * 4096,  # 3 epochs for every size (the default budget is equal samples)
        optimizer_cls=torch.optim.SGD,
        optimizer_kwargs={"lr": 0.07},
        lr_scaling="sqrt",  # lr = 0.07 * sqrt(B / 8)
        repeats=2,
        val_data=TensorDataset(data.x_val, data.y_val),
    )
    run.finish()

    print()
    print(result.summary())
    print()
    print(
        f"K_c = {result.K_c:.0f}: where the validation loss rises fastest with the batch size "
        "for this 3-epoch budget; below it the curve is flat."
    )
    print(f"W&B run (offline): {Path(run.dir).parent}")


if __name__ == "__main__":
    main()

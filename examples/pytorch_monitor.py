"""Watch the batch-scale statistics of a plain PyTorch loop on the W&B dashboard.

    python examples/pytorch_monitor.py            # offline run, CPU, ~10 s

A small MLP learns a noisy teacher on generated data. ``SusceptibilityMonitor``
gets the loss tensor of every step (no ``.item()``: nothing waits for the
device), checks every 500 steps, and logs ``susceptibility/K_c``, ``kappa``,
``alpha``, ``tau_int``, ``p_iid``, ``significant`` against ``susceptibility/step``
plus chi(K) / V(K) charts; the final result lands in the run summary.

W&B runs offline unless you set ``WANDB_MODE`` yourself; the script prints the
run folder and the ``wandb sync`` command that uploads it.
"""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("WANDB_MODE", "offline")

import torch  # noqa: E402
import wandb  # noqa: E402

import wandb_batchsize as wbs  # noqa: E402

STEPS, BATCH = 3000, 32


def make_data(n: int = 8192, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Gaussian inputs, labels sampled from a random teacher's softmax (4 classes)."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 16, generator=gen)
    teacher = torch.randn(16, 4, generator=gen)
    y = torch.multinomial(torch.softmax(2 * x @ teacher, dim=1), 1, generator=gen).squeeze(1)
    return x, y


def main() -> None:
    torch.set_num_threads(1)  # a model this small trains fastest on one core
    torch.manual_seed(0)
    x, y = make_data()
    model = torch.nn.Sequential(torch.nn.Linear(16, 64), torch.nn.ReLU(), torch.nn.Linear(64, 4))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)

    run = wandb.init(
        project="wandb-batchsize-examples",
        name="pytorch-monitor",
        config={"batch_size": BATCH, "lr": 0.05},
    )
    # Streaming over every step. A check (analysis + W&B charts) takes tens of ms,
    # and this toy step a fraction of one, so the default cap (checks <= 0.8 % of the
    # training time) would space checks thousands of steps apart; for the demo,
    # check every 500 steps whatever the cost.
    monitor = wbs.SusceptibilityMonitor(check_every=500, max_overhead=None)
    for step in range(1, STEPS + 1):
        idx = torch.randint(0, len(x), (BATCH,))
        loss = torch.nn.functional.cross_entropy(model(x[idx]), y[idx])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        monitor.on_step(loss, step=step)
        if step % 100 == 0:
            run.log({"train/loss": loss.item(), "train/step": step})  # your own logging
    result = monitor.finish(step=STEPS)  # final result -> run.summary["susceptibility/final/*"]

    print(result.summary())
    print(f"checks at steps {monitor.history_steps}")
    where = Path(run.dir).parent
    run.finish()
    if run.settings.mode == "offline":
        print(f"offline run: {where}\nupload it with: wandb sync {where}")


if __name__ == "__main__":
    main()

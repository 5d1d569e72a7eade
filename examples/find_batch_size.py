"""Find the largest batch that trains in memory, before ``wandb.init`` (PyTorch).

    python examples/find_batch_size.py                 # offline run, CPU, ~20 s
    python examples/find_batch_size.py --target 8GiB   # the size for an 8 GiB device

One line before ``wandb.init``: the search probes real training steps
(forward, loss, backward, Adam step) of the model on a worst-case batch,
restores the model and optimizer exactly, and the next run started in the
process gets ``config.batch_size``, ``config.batch_size_source`` and the
``batch_finder/*`` summary (with the table of probes) without another line.

On a GPU the ceiling is the device's memory; on this CPU demo a memory target
(``--target``, default 128 MiB) stands in for a small device. W&B runs offline
unless you set ``WANDB_MODE`` yourself; the script prints the run folder and
the ``wandb sync`` command that uploads it.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

os.environ.setdefault("WANDB_MODE", "offline")

import torch  # noqa: E402
import wandb  # noqa: E402
from torch import nn  # noqa: E402

import wandb_batchsize as wbs  # noqa: E402


class TinyTransformer(nn.Module):
    """A one-layer transformer classifier over 32-token sequences."""

    def __init__(self, vocab: int = 1000, dim: int = 128, classes: int = 4) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, dim)
        self.block = nn.TransformerEncoderLayer(dim, nhead=4, dim_feedforward=512, batch_first=True)
        self.head = nn.Linear(dim, classes)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.head(self.block(self.embed(tokens)).mean(dim=1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", default="128MiB", help="memory budget, e.g. 24GiB")
    parser.add_argument("--steps", type=int, default=5, help="training steps after the search")
    args = parser.parse_args()

    torch.manual_seed(0)
    model = TinyTransformer()
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-4)
    # the worst case the run will see: the longest sequences (32 tokens here)
    sample = (torch.randint(0, 1000, (8, 32)), torch.randint(0, 4, (8,)))

    result = wbs.find_batch_size(
        model, sample, optimizer=optimizer, target_memory=args.target, max_batch_size=512
    )
    micro, steps = wbs.accumulation_for(512, result.batch_size)
    print(f"effective batch 512 = {steps} accumulation steps x {micro}")

    run = wandb.init(project="wandb-batchsize-examples", job_type="find-batch-size")
    print(f"run config: batch_size={run.config['batch_size']} ({run.config['batch_size_source']})")
    g = torch.Generator().manual_seed(1)
    for step in range(args.steps):
        x = torch.randint(0, 1000, (run.config["batch_size"], 32), generator=g)
        y = torch.randint(0, 4, (run.config["batch_size"],), generator=g)
        loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        run.log({"train/loss": loss.item(), "train/step": step})
    run_dir = Path(run.dir).parent
    run.finish()
    print(f"W&B run folder: {run_dir}")
    if os.environ.get("WANDB_MODE") == "offline":
        print(f"upload it with: wandb sync {run_dir}")


if __name__ == "__main__":
    main()

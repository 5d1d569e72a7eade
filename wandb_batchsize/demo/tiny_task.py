"""A tiny, deterministic training task for examples, sweeps and tests (PyTorch, CPU).

A teacher-student classification problem on generated data: a fixed random
"teacher" MLP defines class probabilities for Gaussian inputs, labels are drawn
from them, and a small "student" MLP is trained with plain SGD. Because labels
are sampled, the best achievable validation loss is the teacher's entropy, not
zero, so the loss-versus-batch-size curve has the shape real tasks show: flat at
small batches, rising once a fixed sample budget leaves too few steps.

Everything is seeded: the data by ``data_seed`` (fixed across a sweep, so runs
differ only in batch size and ``seed``), the student's initialisation and the
shuffling by ``seed``. The same call gives the same numbers on the same machine.

    >>> from wandb_batchsize.demo.tiny_task import train
    >>> result = train(batch_size=32, lr=0.1, epochs=2, seed=0)
    >>> result.val_loss  # doctest: +SKIP
    0.488...

Only torch is needed (``pip install wandb-batchsize[torch]``); nothing here
touches W&B, so any training loop (Lightning, a notebook, a test) can reuse it.
``examples/tiny_task.py`` is this module, for the examples that import
``tiny_task`` from their folder; ``python examples/tiny_task.py`` prints the
loss-versus-batch-size curve (:func:`main`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

__all__ = ["TinyData", "TrainResult", "make_data", "make_model", "train", "evaluate", "main"]


@dataclass(frozen=True)
class TinyData:
    """Train and validation tensors (float32 inputs, int64 class labels)."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor

    @property
    def n_features(self) -> int:
        return int(self.x_train.shape[1])

    @property
    def n_classes(self) -> int:
        return int(max(self.y_train.max(), self.y_val.max()) + 1)


def make_data(
    n_train: int = 4096,
    n_val: int = 1024,
    *,
    n_features: int = 16,
    n_classes: int = 4,
    teacher_hidden: int = 32,
    temperature: float = 0.5,
    data_seed: int = 0,
) -> TinyData:
    """Gaussian inputs labelled by sampling from a random teacher MLP's softmax.

    Lower ``temperature`` gives sharper teacher probabilities (a lower loss floor).
    """
    if n_train < 1 or n_val < 1:
        raise ValueError(f"need n_train >= 1 and n_val >= 1, got {n_train} and {n_val}")
    gen = torch.Generator().manual_seed(int(data_seed))
    n = n_train + n_val
    x = torch.randn(n, n_features, generator=gen)
    w1 = torch.randn(n_features, teacher_hidden, generator=gen) / math.sqrt(n_features)
    w2 = torch.randn(teacher_hidden, n_classes, generator=gen) / math.sqrt(teacher_hidden)
    logits = torch.tanh(x @ w1) @ w2 * (3.0 / temperature)
    y = torch.multinomial(torch.softmax(logits, dim=1), 1, generator=gen).squeeze(1)
    return TinyData(x[:n_train], y[:n_train], x[n_train:], y[n_train:])


def make_model(
    n_features: int = 16, n_classes: int = 4, *, hidden: int = 32, seed: int = 0
) -> nn.Module:
    """The student: Linear -> Tanh -> Linear, initialised from ``seed``."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        return nn.Sequential(nn.Linear(n_features, hidden), nn.Tanh(), nn.Linear(hidden, n_classes))


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    """Mean cross-entropy and accuracy of ``model`` on ``(x, y)``."""
    logits = model(x)
    loss = nn.functional.cross_entropy(logits, y).item()
    accuracy = (logits.argmax(dim=1) == y).float().mean().item()
    return float(loss), float(accuracy)


@dataclass(frozen=True)
class TrainResult:
    """What one training run produced.

    ``steps_to_target`` is the first optimizer step after which the validation
    loss was <= ``target`` (None when no target was set or it was not reached);
    ``samples_to_target = steps_to_target * batch_size``.
    """

    batch_size: int
    lr: float
    seed: int
    steps: int
    samples: int
    val_loss: float
    val_accuracy: float
    train_loss: float
    target: float | None
    steps_to_target: int | None
    samples_to_target: int | None
    train_losses: list[float] = field(repr=False, default_factory=list)


StepCallback = Callable[[int, float, "float | None"], None]


def train(
    batch_size: int,
    *,
    lr: float = 0.1,
    epochs: float = 4.0,
    max_steps: int | None = None,
    seed: int = 0,
    target: float | None = None,
    stop_at_target: bool = True,
    eval_every: int | None = None,
    data: TinyData | None = None,
    hidden: int = 32,
    on_step: StepCallback | None = None,
) -> TrainResult:
    """Train the student with plain SGD (``p -= lr * grad``) and return its validation loss.

    Budget: ``max_steps`` optimizer steps when given, else ``epochs`` passes over
    the training set (a fixed number of samples, so larger batches take fewer
    steps). With a ``target``, the validation loss is checked every
    ``eval_every`` steps (default: every step) and training stops when it is
    reached if ``stop_at_target``. ``on_step(step, train_loss, val_loss_or_None)``
    is called after every step.
    """
    batch_size = int(batch_size)
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if not (lr > 0 and math.isfinite(lr)):
        raise ValueError(f"lr must be a positive number, got {lr}")
    data = data if data is not None else make_data()
    n_train = int(data.x_train.shape[0])
    batch_size_eff = min(batch_size, n_train)
    if max_steps is None:
        max_steps = max(1, int(round(epochs * n_train / batch_size_eff)))
    if eval_every is None:
        eval_every = 1 if target is not None else 0

    model = make_model(data.n_features, data.n_classes, hidden=hidden, seed=seed)
    params = list(model.parameters())
    gen = torch.Generator().manual_seed(10_007 * int(seed) + 1)
    order = torch.randperm(n_train, generator=gen)
    cursor = 0
    losses: list[float] = []
    steps_to_target: int | None = None
    step = 0
    for step in range(1, max_steps + 1):
        if cursor + batch_size_eff > n_train:
            order = torch.randperm(n_train, generator=gen)
            cursor = 0
        idx = order[cursor : cursor + batch_size_eff]
        cursor += batch_size_eff
        loss = nn.functional.cross_entropy(model(data.x_train[idx]), data.y_train[idx])
        grads = torch.autograd.grad(loss, params)
        with torch.no_grad():  # plain SGD, written out: torch.optim's first use costs ~2 s
            for p, g in zip(params, grads, strict=True):
                p.add_(g, alpha=-lr)
        value = float(loss.item())
        if not math.isfinite(value):
            losses.append(value)
            break
        losses.append(value)
        val_now: float | None = None
        if eval_every and step % eval_every == 0:
            val_now, _ = evaluate(model, data.x_val, data.y_val)
            if target is not None and steps_to_target is None and val_now <= target:
                steps_to_target = step
        if on_step is not None:
            on_step(step, value, val_now)
        if steps_to_target is not None and stop_at_target:
            break

    val_loss, val_accuracy = evaluate(model, data.x_val, data.y_val)
    tail = losses[-max(1, len(losses) // 10) :]
    return TrainResult(
        batch_size=batch_size,
        lr=float(lr),
        seed=int(seed),
        steps=step,
        samples=step * batch_size_eff,
        val_loss=val_loss,
        val_accuracy=val_accuracy,
        train_loss=float(sum(tail) / len(tail)),
        target=target,
        steps_to_target=steps_to_target,
        samples_to_target=None if steps_to_target is None else steps_to_target * batch_size_eff,
        train_losses=losses,
    )


def main() -> None:
    """Print a quick look at the loss-versus-batch-size curve (4 epochs, sqrt lr rule)."""
    import time

    shared = make_data()
    for b in (4, 8, 16, 32, 64, 128, 256, 512):
        t0 = time.perf_counter()
        r = train(b, lr=0.05 * math.sqrt(b / 4), epochs=4, data=shared)
        print(
            f"B={b:4d} steps={r.steps:5d} val_loss={r.val_loss:.4f} "
            f"acc={r.val_accuracy:.3f} ({time.perf_counter() - t0:.2f}s)"
        )


if __name__ == "__main__":
    main()

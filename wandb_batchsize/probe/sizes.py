"""Which batch sizes a probe runs, and how much each one trains (the budget).

The published ``find_optimal_batch_size`` gives every size the same number of
*steps*, so a batch of 512 sees 16x the data a batch of 32 sees and looks
better for that reason alone. The default here is the same number of *samples*
per size (``budget="samples"``); ``budget="steps"`` reproduces the published
behaviour.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

BUDGETS = ("samples", "steps")
METRICS = ("auto", "train_loss", "val_loss")
LR_RULES = (None, "linear", "sqrt")

#: smallest default batch size, and the top of the default range when no
#: memory ceiling (``max_batch``) is known
DEFAULT_SMALLEST = 8
DEFAULT_LARGEST = 1024
#: a size given fewer steps than this by the budget is not probed
MIN_STEPS = 3
#: the sweep analysis needs this many distinct sizes
MIN_SIZES_FOR_ANALYSIS = 4

def default_batch_sizes(
    n_samples: int | None,
    max_batch: int | None = None,
    *,
    smallest: int = DEFAULT_SMALLEST,
    largest: int = DEFAULT_LARGEST,
) -> list[int]:
    """Powers of two from ``smallest`` up to the memory ceiling and the dataset length.

    The top is ``min(max_batch, n_samples)``; with no ceiling known it is
    ``min(largest, n_samples)`` (a probe is meant to be quick: pass ``max_batch``,
    e.g. from ``find_batch_size``, to go higher). When that leaves fewer than four
    sizes the range is extended downwards (to 1) so the sweep can be analysed.
    """
    top = int(max_batch) if max_batch is not None else int(largest)  # int(): a search result too
    if n_samples is not None:
        top = min(top, int(n_samples))
    if top < 1:
        raise ValueError(f"no batch size fits: the largest allowed is {top}")
    powers = [2**k for k in range(int(math.floor(math.log2(top))) + 1)]
    sizes = [b for b in powers if b >= smallest]
    if len(sizes) < MIN_SIZES_FOR_ANALYSIS:
        sizes = powers[-MIN_SIZES_FOR_ANALYSIS:]
    return sizes


def resolve_batch_sizes(
    batch_sizes: Sequence[int] | None,
    *,
    n_samples: int | None,
    max_batch: int | None,
) -> tuple[list[int], dict[int, str]]:
    """The sizes to probe (sorted, distinct) and the ones left out, with why.

    ``max_batch`` is an int or a ``MemorySearchResult`` (its ``batch_size``, the
    size the memory search found safe to train with).
    """
    if max_batch is not None:
        max_batch = int(max_batch)
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {max_batch}")
    if batch_sizes is None:
        return default_batch_sizes(n_samples, max_batch), {}
    sizes: list[int] = []
    for b in batch_sizes:
        if isinstance(b, bool) or not float(b).is_integer() or int(b) < 1:
            raise ValueError(
                f"batch sizes must be positive integers, got {b!r} in {list(batch_sizes)}"
            )
        sizes.append(int(b))
    if not sizes:
        raise ValueError("batch_sizes is empty: give at least one size (four for the analysis)")
    left_out: dict[int, str] = {}
    kept: list[int] = []
    for b in sorted(set(sizes)):
        if n_samples is not None and b > n_samples:
            left_out[b] = f"larger than the dataset ({n_samples} samples)"
        elif max_batch is not None and b > int(max_batch):
            left_out[b] = f"above the memory ceiling max_batch={int(max_batch)}"
        else:
            kept.append(b)
    if not kept:
        raise ValueError(
            f"none of the batch sizes {sorted(set(sizes))} can be probed: "
            + "; ".join(f"{b}: {why}" for b, why in left_out.items())
        )
    return kept, left_out


@dataclass(frozen=True)
class BudgetPlan:
    """How long each size trains: ``steps[b]`` optimizer steps of ``b`` samples."""

    budget: str
    steps: dict[int, int]
    samples_per_size: int | None
    left_out: dict[int, str] = field(default_factory=dict)

    @property
    def batch_sizes(self) -> list[int]:
        return sorted(self.steps)

    def samples(self, batch_size: int) -> int:
        return self.steps[batch_size] * batch_size


def plan_budget(
    batch_sizes: Sequence[int],
    *,
    budget: str = "samples",
    samples_per_size: int | None = None,
    steps_per_size: int = 50,
    min_steps: int = MIN_STEPS,
) -> BudgetPlan:
    """Steps per size for an equal-samples or an equal-steps budget.

    ``budget="samples"``: every size sees ``samples_per_size`` samples, i.e.
    ``samples_per_size // b`` steps; the default ``samples_per_size`` is
    ``steps_per_size * max(batch_sizes)`` (the largest size gets
    ``steps_per_size`` steps, each smaller size proportionally more), which is a
    multiple of every power-of-two size, so the samples are exactly equal.
    A size the budget gives fewer than ``min_steps`` steps is left out, with why.

    ``budget="steps"``: every size takes ``steps_per_size`` steps (published).
    """
    if budget not in BUDGETS:
        raise ValueError(f"budget must be one of {BUDGETS}, got {budget!r}")
    steps_per_size = int(steps_per_size)
    if steps_per_size < min_steps:
        raise ValueError(
            f"steps_per_size must be >= {min_steps} (the metric averages the last third), "
            f"got {steps_per_size}"
        )
    sizes = sorted(int(b) for b in batch_sizes)
    if budget == "steps":
        if samples_per_size is not None:
            raise ValueError('samples_per_size applies to budget="samples" only')
        return BudgetPlan("steps", {b: steps_per_size for b in sizes}, None)
    if samples_per_size is None:
        samples_per_size = steps_per_size * max(sizes)
    samples_per_size = int(samples_per_size)
    if samples_per_size < 1:
        raise ValueError(f"samples_per_size must be >= 1, got {samples_per_size}")
    steps: dict[int, int] = {}
    left_out: dict[int, str] = {}
    for b in sizes:
        n = samples_per_size // b
        if n < min_steps:
            left_out[b] = (
                f"samples_per_size={samples_per_size} gives only {n} step(s) of {b} "
                f"(need {min_steps}); raise samples_per_size to at least {min_steps * b}"
            )
        else:
            steps[b] = n
    if not steps:
        raise ValueError(
            f"samples_per_size={samples_per_size} is too small for every size: the "
            f"smallest, {sizes[0]}, needs at least {min_steps * sizes[0]}"
        )
    return BudgetPlan("samples", steps, samples_per_size, left_out)


def lr_factor(batch_size: int, base_batch_size: int, rule: str | None) -> float:
    """The learning-rate multiplier for ``batch_size``: 1, ``B/B0`` or ``sqrt(B/B0)``.

    The rule of ``analysis.schedules.scale_schedule`` (linear: Goyal et al. 2017
    for SGD; square root: Malladi et al. 2022 for Adam).
    """
    if rule not in LR_RULES:
        raise ValueError(f"lr_scaling must be None, 'linear' or 'sqrt', got {rule!r}")
    if rule is None:
        return 1.0
    from wandb_batchsize.analysis.schedules import scale_schedule

    schedule = scale_schedule(
        1.0, base_batch_size, batch_size, reference_lr=1.0, keep="samples", lr_scaling=rule
    )
    return float(schedule.lr)


def last_third_mean(losses: Sequence[float]) -> float:
    """Mean of the last third of a probe's losses (at least one), as published."""
    values = np.asarray(losses, dtype=float)
    if values.size == 0:
        return float("nan")
    return float(values[-max(1, values.size // 3) :].mean())

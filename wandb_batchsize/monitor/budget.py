"""The overhead budget: space checks out so that they cost at most a fraction of training.

With ``m = max_overhead``, ``C`` the time spent in checks so far (the next one,
expected to cost as much as the last, included) and ``T`` the training time
seen between checks, the next check comes after ``S`` more steps with

    C + cost <= m * (T + S * t_step)      (t_step = T / training steps seen)

rounded up to a multiple of ``check_every``. The budget is cumulative (a costly
first check is paid back by later spacing) and, when streaming, plans for the
next check costing more (about in proportion to N, as the analysis simulates its
null at length N): ``S >= deficit / (m * t_step - cost / N)``.
"""

from __future__ import annotations

import logging
import math
import time

logger = logging.getLogger("wandb_batchsize")

__all__ = ["OverheadBudget"]


class OverheadBudget:
    """Training time and check time of one run; where the next check may come."""

    def __init__(self, check_every: int, max_overhead: float | None, *, name: str) -> None:
        self.check_every = int(check_every)
        self.max_overhead = None if max_overhead is None else float(max_overhead)
        self.name = name
        self.t_mark: float | None = None  # end of the last check (or training start)
        self.steps_mark = 0  # steps at t_mark
        self.train_seconds = 0.0  # training time seen between checks
        self.train_steps = 0  # steps in that time
        self.check_seconds = 0.0  # time spent in checks
        self.n_deferred = 0  # checks skipped to respect max_overhead

    def start(self, n_steps: int) -> None:
        """Training (re)starts now: the time since the last check is not training time."""
        self.t_mark = time.perf_counter()
        self.steps_mark = n_steps

    def first_step(self) -> None:
        """A step was recorded: the clock starts at the first one."""
        if self.t_mark is None:
            self.t_mark = time.perf_counter()

    def next_check(
        self, t0: float, t1: float, n_steps: int, *, final: bool, streaming: bool
    ) -> int | None:
        """Account for a check that ran from ``t0`` to ``t1``; the step of the next one
        (a multiple of ``check_every``), or None after the final check."""
        if self.t_mark is not None:
            self.train_seconds += max(t0 - self.t_mark, 0.0)
            self.train_steps += n_steps - self.steps_mark
        cost = t1 - t0
        self.check_seconds += cost
        self.t_mark, self.steps_mark = t1, n_steps
        if final:  # the end of a fit keeps the schedule it found
            return None
        stride = self.check_every
        m = self.max_overhead
        if m is not None and self.train_steps > 0 and self.train_seconds > 0:
            step_time = self.train_seconds / self.train_steps
            n = max(n_steps, 1)
            deficit = self.check_seconds + cost - m * self.train_seconds
            rate = m * step_time - (cost / n if streaming else 0.0)
            if deficit > 0:
                needed = deficit / rate if rate > 0 else 2.0 * n
                stride = max(stride, self.check_every * math.ceil(needed / self.check_every))
                if stride > self.check_every:
                    self.n_deferred += stride // self.check_every - 1
                    logger.info(
                        "%s: a check took %.3f s; next check in %d steps to stay within "
                        "%.1f %% of the training time",
                        self.name,
                        cost,
                        stride,
                        100 * m,
                    )
        nxt = n_steps + stride
        nxt -= nxt % self.check_every  # keep the schedule on multiples of check_every
        if nxt <= n_steps:
            nxt += self.check_every
        return nxt

"""The lines printed while measuring: a header, one line per batch size, the result.

Modelled on the memory search's table (:mod:`wandb_batchsize.memory.progress`).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any, TextIO

from wandb_batchsize.critical.result import CriticalBatchRow

RULE = "-" * 70


class CriticalProgress:
    """Prints to stdout (or ``stream``); silent when ``verbose=False``."""

    def __init__(self, verbose: bool = True, stream: TextIO | None = None) -> None:
        self.verbose = verbose
        self.stream = stream

    def _print(self, line: str = "") -> None:
        if self.verbose:
            print(line, file=self.stream or sys.stdout, flush=True)

    def header(
        self, *, framework: str, device: str, sizes: Sequence[int], optimizer_kind: str, lr: float
    ) -> None:
        self._print(f"Critical batch size ({framework}, {device})")
        self._print(f"  batch sizes {sizes[0]} .. {sizes[-1]} ({len(sizes)} sizes, geometric)")
        self._print(f"  optimizer {optimizer_kind}, reference lr {lr:.4g}")

    def target(self, target: float, source: str, start_loss: float, samples: int) -> None:
        how = (
            "given" if source == "user" else f"reached by the reference batch ({samples} examples)"
        )
        self._print(f"  target loss {target:.5g} ({how}); starting loss {start_loss:.5g}")
        self._print(RULE)
        self._print(
            f"  {'batch':>6}  {'best lr':>10}  {'steps':>7}  {'examples':>10}  {'time':>7}  lrs tried"
        )
        self._print(RULE)

    def size(
        self, batch_size: int, rows: Sequence[CriticalBatchRow], best: tuple[float, float] | None
    ) -> None:
        seconds = sum(r.seconds for r in rows)
        tried = " ".join(
            f"{r.lr:.3g}{'!' if r.diverged else ('' if r.reached else '-')}"
            for r in rows
            if r.repeat == 0
        )
        if best is None:
            self._print(
                f"  {batch_size:>6}  {'-':>10}  {'-':>7}  {'-':>10}  {seconds:>6.1f}s  {tried}  (target not reached)"
            )
            return
        lr, steps = best
        self._print(
            f"  {batch_size:>6}  {lr:>10.4g}  {steps:>7.0f}  {steps * batch_size:>10.0f}  "
            f"{seconds:>6.1f}s  {tried}"
        )

    def note(self, message: str) -> None:
        self._print(f"  {message}")

    def footer(self, result: Any) -> None:
        self._print(RULE)
        for line in result.summary().splitlines():
            self._print(line)

"""Progress of a probe on stderr: one line per size, a bar on a terminal."""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from typing import TextIO

import numpy as np

from wandb_batchsize.probe.result import ProbeRecord
from wandb_batchsize.probe.sizes import BudgetPlan


class Progress:
    """One line per batch size on stderr, and a ``\\r`` bar while a size trains
    when stderr is a terminal. ``enabled=False`` prints nothing."""

    BAR = 24

    def __init__(
        self, enabled: bool = True, stream: TextIO | None = None, label: str = "loss"
    ) -> None:
        self.enabled = enabled
        self.stream = stream if stream is not None else sys.stderr
        self.label = label
        try:
            self.tty = bool(self.stream.isatty())
        except Exception:  # noqa: BLE001
            self.tty = False
        self._b = 0
        self._steps = 0
        self._repeat = 0
        self._repeats = 1
        self._last = 0.0
        self._bar_shown = False

    def _write(self, text: str) -> None:
        try:
            self.stream.write(text)
            self.stream.flush()
        except Exception:  # noqa: BLE001 - a closed stream must not stop probing
            self.enabled = False

    def header(self, plan: BudgetPlan, repeats: int, metric: str, framework: str) -> None:
        self.label = metric
        if not self.enabled:
            return
        sizes = plan.batch_sizes
        budget = (
            f"{plan.samples_per_size:,} samples per size"
            if plan.budget == "samples"
            else f"{plan.steps[sizes[0]]} steps per size"
        )
        reps = f" x {repeats} repeats" if repeats > 1 else ""
        self._write(
            f"probe_batch_sizes ({framework}): {len(sizes)} sizes {sizes}{reps}, {budget}, "
            f"metric {metric}\n"
        )

    def start_probe(self, b: int, repeat: int, repeats: int, steps: int) -> None:
        self._b, self._repeat, self._repeats, self._steps = b, repeat, repeats, steps
        self._last = 0.0
        self.step(0)

    def step(self, done: int) -> None:
        if not (self.enabled and self.tty):
            return
        now = time.monotonic()
        if done not in (0, self._steps) and now - self._last < 0.1:
            return
        self._last = now
        filled = int(self.BAR * done / max(self._steps, 1))
        rep = f" rep {self._repeat + 1}/{self._repeats}" if self._repeats > 1 else ""
        self._write(
            f"\r  B={self._b:<6d}{rep} [{'#' * filled}{'.' * (self.BAR - filled)}] "
            f"{done}/{self._steps} steps"
        )
        self._bar_shown = True

    def _clear_bar(self) -> None:
        if self._bar_shown:
            self._write("\r\033[K")
            self._bar_shown = False

    def size_done(self, b: int, group: Sequence[ProbeRecord]) -> None:
        if not self.enabled:
            return
        self._clear_bar()
        ok = [r for r in group if r.status == "ok"]
        if not ok:
            note = group[0].note if group else ""
            self._write(f"  B={b:<6d} {group[0].status if group else '?':>8}  {note}\n")
            return
        values = np.array([r.metric for r in ok])
        spread = f" (sd {values.std(ddof=1):.4f}, {len(values)} runs)" if len(values) > 1 else ""
        seconds = sum(r.seconds for r in ok)
        throughput = float(np.mean([r.throughput for r in ok]))
        failed = [r for r in group if r.status != "ok"]
        extra = f"  ({len(failed)} {failed[0].status})" if failed else ""
        self._write(
            f"  B={b:<6d} steps={ok[0].steps:<6d} samples={ok[0].samples:<9,d} "
            f"{self.label}={values.mean():.4f}{spread}  {seconds:.1f} s  "
            f"{throughput:,.0f} samples/s{extra}\n"
        )

    def close(self) -> None:
        if self.enabled:
            self._clear_bar()

"""The progress table printed while probing (the seed's display, one line per probe).

The memory column shows the allocator's peak (``peak memory``) where the
backend has one (CUDA/XPU ``max_memory_allocated``, TensorFlow's GPU
``get_memory_info``). On the CPU the only reading is the growth of the
process's resident set during the probe (``/proc``): pages already resident
from an earlier, larger probe are not counted again, so it goes up and down
with the batch size and is *not* the step's memory. It still feeds the fit
(through the budget it leaves), but the table leaves it out and says so.
"""

from __future__ import annotations

import sys
from typing import Any, TextIO

from wandb_batchsize.backends.host_memory import format_bytes
from wandb_batchsize.memory.search import CeilingSearch, Probe, SearchOutcome

RULE = "-" * 66
#: meters whose per-probe reading is the step's peak memory (monotone in the batch size)
PEAK_METERS = ("cuda", "xpu", "tensorflow-gpu")
HOST_NOTE = (
    "  memory readings:         process resident-set growth (/proc), used for the fit;\n"
    "                           not shown per probe: it is not the step's memory (pages\n"
    "                           reused from an earlier probe are not counted again)"
)


def _mark(fitted: bool, error: str | None) -> str:
    if fitted:
        return "✓"
    return "✗ over" if error == "over target_memory" else "✗ OOM"


class ProgressTable:
    """Prints the header, one row per probe, and the result; silent when ``verbose=False``."""

    def __init__(self, verbose: bool = True, stream: TextIO | None = None) -> None:
        self.verbose = verbose
        self.stream = stream
        self._bracket: tuple[int, int] | None = None
        self.show_peak = True

    def _print(self, line: str = "") -> None:
        if self.verbose:
            print(line, file=self.stream or sys.stdout, flush=True)

    def header(
        self,
        *,
        framework: str,
        device: str,
        model_params: int,
        model_memory_mb: float,
        budget_bytes: int | None,
        min_batch_size: int,
        max_batch_size: int,
        world_size: int = 1,
        meter: str = "",
        max_length: int | None = None,
    ) -> None:
        self.show_peak = meter in PEAK_METERS
        self._print(f"Batch size finder ({framework}, {device})")
        self._print(f"  model parameters:        {model_params:,}")
        self._print(
            f"  estimated model memory:  {model_memory_mb:,.1f} MB "
            "(params x 4 bytes x 4: weights, gradients, Adam m and v)"
        )
        if budget_bytes is not None:
            self._print(f"  memory budget:           {format_bytes(budget_bytes)}")
        if meter == "process":
            self._print(HOST_NOTE)
        if max_length is not None:
            self._print(f"  sequence length:         {max_length} (max_length, the worst case)")
        if world_size > 1:
            self._print(f"  ranks:                   {world_size} (the minimum over ranks is kept)")
        self._print(f"  searching batch sizes {min_batch_size} .. {max_batch_size}")
        self._print(RULE)
        peak = f"{'peak memory':>12} " if self.show_peak else ""
        self._print(f"  {'batch':>6}  {'result':<9} {peak}{'time':>8}  step")
        self._print(RULE)

    def row(self, probe: Probe, search: CeilingSearch) -> None:
        peak = ""
        if self.show_peak:
            peak = f"{format_bytes(probe.peak_bytes) if probe.fitted else '-':>12} "
        self._print(
            f"  {probe.batch_size:>6}  {_mark(probe.fitted, probe.error):<9} {peak}"
            f"{probe.seconds:>7.2f}s  {probe.phase}"
        )
        if search.lo is not None and search.hi is not None:
            bracket = (search.lo, search.hi)
            if bracket != self._bracket:
                self._bracket = bracket
                self._print(f"          binary search: {search.lo} fits, {search.hi} does not")

    def section(self, title: str) -> None:
        self._bracket = None
        self._print(RULE)
        self._print(f"  {title}")

    def searched(
        self,
        outcome: SearchOutcome,
        size: int,
        *,
        seconds: float,
        safety_factor: float,
        multiple_of: int,
    ) -> None:
        """The search's answer and the safety factor, before the confirmation."""
        self._print(RULE)
        top = outcome.max_fitting
        ooms = outcome.oom_events
        if outcome.first_failing is None:
            self._print(
                f"  max_batch_size={top} fitted with no OOM ({len(outcome.probes)} probes, "
                f"{seconds:.1f} s): the cap was reached; the true ceiling is higher "
                "(raise max_batch_size to find it). No safety margin applied."
            )
            return
        self._print(
            f"  largest batch that fits: {top} (first failing: {outcome.first_failing}; "
            f"{len(outcome.probes)} probes, {ooms} OOM, {seconds:.1f} s)"
        )
        raw = int(top * safety_factor + 1e-9)
        rounding = f" -> {size} (multiple of {multiple_of})" if size != raw else ""
        self._print(f"  safety factor {safety_factor}: {top} x {safety_factor} = {raw}{rounding}")

    def attempt(self, size: int, outcome: Any) -> None:
        """One confirmation attempt (training steps at ``size`` after the search)."""
        mark = _mark(outcome.fitted, outcome.error)
        self._print(f"  confirm {size:>6}: {mark}")

    def footer(self, result: Any) -> None:
        self._print(RULE)
        if result.step_downs:
            downs = " -> ".join(str(b) for b in (*result.step_downs, result.batch_size))
            self._print(f"  stepped down after the search: {downs}")
        if result.confirmed:
            proof = f"{result.confirm_steps} training steps ran at it after the search"
        else:
            proof = "not confirmed (confirm_steps=0)"
        if result.cap_reached and not result.step_downs:
            self._print(
                f"✓ batch size: {result.batch_size} — the max_batch_size cap, not a memory "
                f"ceiling ({proof})"
            )
        else:
            self._print(f"✓ optimal batch size: {result.batch_size} ({proof})")
        if result.eval_batch_size is not None:
            self._print(
                f"✓ eval batch size: {result.eval_batch_size} (largest fitting "
                f"{result.eval_max_fitting}, no-grad forward)"
            )

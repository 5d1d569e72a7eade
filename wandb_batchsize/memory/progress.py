"""The progress table printed while probing (the seed's display, one line per probe)."""

from __future__ import annotations

import sys
from typing import Any, TextIO

from wandb_batchsize.backends.host_memory import format_bytes
from wandb_batchsize.memory.search import CeilingSearch, Probe

RULE = "-" * 66


class ProgressTable:
    """Prints the header, one row per probe, and the result; silent when ``verbose=False``."""

    def __init__(self, verbose: bool = True, stream: TextIO | None = None) -> None:
        self.verbose = verbose
        self.stream = stream
        self._bracket: tuple[int, int] | None = None

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
    ) -> None:
        self._print(f"Batch size finder ({framework}, {device})")
        self._print(f"  model parameters:        {model_params:,}")
        self._print(
            f"  estimated model memory:  {model_memory_mb:,.1f} MB "
            "(params x 4 bytes x 4: weights, gradients, Adam m and v)"
        )
        if budget_bytes is not None:
            self._print(f"  memory budget:           {format_bytes(budget_bytes)}")
        if world_size > 1:
            self._print(f"  ranks:                   {world_size} (the minimum over ranks is kept)")
        self._print(f"  searching batch sizes {min_batch_size} .. {max_batch_size}")
        self._print(RULE)
        self._print(f"  {'batch':>6}  {'result':<9} {'peak memory':>12} {'time':>8}  step")
        self._print(RULE)

    def row(self, probe: Probe, search: CeilingSearch) -> None:
        mark = (
            "✓" if probe.fitted else ("✗ OOM" if probe.error != "over target_memory" else "✗ over")
        )
        peak = format_bytes(probe.peak_bytes) if probe.fitted else "-"
        self._print(
            f"  {probe.batch_size:>6}  {mark:<9} {peak:>12} {probe.seconds:>7.2f}s  {probe.phase}"
        )
        if search.lo is not None and search.hi is not None:
            bracket = (search.lo, search.hi)
            if bracket != self._bracket:
                self._bracket = bracket
                self._print(f"          binary search: {search.lo} fits, {search.hi} does not")

    def footer(self, result: Any) -> None:
        self._print(RULE)
        fails = f"first failing: {result.first_failing}" if result.first_failing else "no OOM"
        self._print(
            f"  largest batch that fits: {result.max_fitting} ({fails}; "
            f"{len(result.probes)} probes, {result.oom_events} OOM, {result.seconds:.1f} s)"
        )
        if result.first_failing is None:
            self._print(f"  max_batch_size={result.max_fitting} fits: no safety margin needed")
        else:
            raw = int(result.max_fitting * result.safety_factor + 1e-9)
            rounding = (
                f" -> {result.batch_size} (multiple of {result.multiple_of})"
                if result.batch_size != raw
                else ""
            )
            self._print(
                f"  safety factor {result.safety_factor}: {result.max_fitting} x "
                f"{result.safety_factor} = {raw}{rounding}"
            )
        self._print(f"✓ optimal batch size: {result.batch_size}")

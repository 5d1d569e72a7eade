"""Memory readings for the search: peak bytes of one probe and the budget left.

A *meter* brackets one probe: ``start()`` before it, ``stop()`` after it,
returning a :class:`Reading` (the probe's peak in bytes and the headroom, the
budget minus that peak; either may be ``None`` when the backend cannot tell).
The search strategy fits ``headroom(B) = c - b * B`` on these readings.

This module is framework-free. The host-process meter works for any framework
on Linux:

- peak: the resident-set high-water mark ``VmHWM`` of ``/proc/self/status``,
  reset before each probe by writing ``5`` to ``/proc/self/clear_refs``
  (Linux >= 4.0); the probe's peak is ``VmHWM - VmRSS`` at its start, which
  counts every page the step touched, whatever allocator it used;
- budget: the smallest of the address-space limit left (``RLIMIT_AS`` minus
  ``VmSize``), the memory the kernel reports available (``MemAvailable``, and
  the cgroup limit where there is one), and ``target_memory`` minus the
  process's resident size when the user named a target.

Device meters (CUDA/XPU through ``torch.<device>.max_memory_allocated``, TF
through ``tf.config.experimental.get_memory_info``) live next to their
framework's probe and follow the same protocol.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path

_UNITS = {
    "": 1,
    "b": 1,
    "k": 1000,
    "kb": 1000,
    "m": 1000**2,
    "mb": 1000**2,
    "g": 1000**3,
    "gb": 1000**3,
    "t": 1000**4,
    "tb": 1000**4,
    "kib": 1024,
    "mib": 1024**2,
    "gib": 1024**3,
    "tib": 1024**4,
}


def parse_bytes(value: int | float | str | None) -> int | None:
    """``"24GiB"`` -> 25769803776; ``"1.5 GB"`` -> 1500000000; ints pass through.

    Raises ``ValueError`` with the accepted forms on anything else.
    """
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError(f"target_memory must be bytes or a size like '24GiB', got {value!r}")
    if isinstance(value, (int, float)):
        if value <= 0:
            raise ValueError(f"target_memory must be positive, got {value!r}")
        return int(value)
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([A-Za-z]*)\s*", str(value))
    if not match or match.group(2).lower() not in _UNITS:
        raise ValueError(
            f"cannot read target_memory={value!r}: use bytes (an int) or a size such as "
            "'24GiB', '16GB', '800MiB'"
        )
    number = float(match.group(1)) * _UNITS[match.group(2).lower()]
    if number <= 0:
        raise ValueError(f"target_memory must be positive, got {value!r}")
    return int(number)


def format_bytes(n: float | None) -> str:
    """Bytes as a short human string (``"1.2 GiB"``); ``"-"`` for None."""
    if n is None:
        return "-"
    sign = "-" if n < 0 else ""
    n = abs(float(n))
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{sign}{n:.0f} {unit}" if unit == "B" else f"{sign}{n:.1f} {unit}"
        n /= 1024
    return f"{sign}{n:.1f} TiB"  # pragma: no cover


@dataclass(frozen=True)
class Reading:
    """What a meter saw during one probe."""

    peak_bytes: int | None = None
    headroom_bytes: int | None = None
    budget_bytes: int | None = None

    def exceeds(self, target_bytes: int | None) -> bool:
        """Over a user-named target: only such a target turns a reading into a failure."""
        return target_bytes is not None and self.headroom_bytes is not None and self.headroom_bytes < 0


class NullMeter:
    """A backend with no memory readings: the search falls back to doubling + bisection."""

    name = "none"

    def start(self) -> None:
        return None

    def stop(self) -> Reading:
        return Reading()

    def over_budget(self, reading: Reading) -> bool:
        return False


def _proc_status() -> dict[str, int]:
    values: dict[str, int] = {}
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(("VmSize", "VmRSS", "VmHWM")):
                key, _, rest = line.partition(":")
                values[key] = int(rest.split()[0]) * 1024
    return values


def _mem_available() -> int | None:
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def _cgroup_left() -> int | None:
    """Bytes left under a cgroup v2 memory limit, or None when unlimited/unknown."""
    base = Path("/sys/fs/cgroup")
    try:
        limit = (base / "memory.max").read_text().strip()
        if limit == "max":
            return None
        current = int((base / "memory.current").read_text().strip())
        return int(limit) - current
    except (OSError, ValueError):
        return None


def _rlimit_as() -> int | None:
    try:
        import resource
    except ImportError:  # pragma: no cover - not on Linux
        return None
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    return None if soft == resource.RLIM_INFINITY else int(soft)


def process_meter_supported() -> bool:
    """True on Linux with a writable ``/proc/self/clear_refs`` (peak reset works)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        _proc_status()
        return True
    except OSError:
        return False


class ProcessMeter:
    """Peak resident memory of this process during a probe, and the budget it had.

    ``target_bytes`` (optional) caps the memory of training: the model's
    weights (``model_bytes``) plus what the probe adds to the process's
    resident memory over its size at the first probe — activations, gradients,
    optimizer state, temporaries. The interpreter and the frameworks' libraries
    do not count, as they would not on a device. A probe whose peak exceeds the
    target counts as not fitting, as on a smaller machine. The budget is also
    capped by what ``RLIMIT_AS``, the cgroup and ``MemAvailable`` leave.
    """

    name = "process"

    def __init__(self, target_bytes: int | None = None, model_bytes: int = 0) -> None:
        self.target_bytes = target_bytes
        self.model_bytes = int(model_bytes)
        self._base_rss: int | None = None
        self._start: dict[str, int] | None = None
        self._budget: int | None = None

    def budget_now(self, status: dict[str, int] | None = None) -> int | None:
        """Bytes a probe starting now may add before it fails (or exceeds the target)."""
        status = status or _proc_status()
        limits: list[int] = []
        cap = _rlimit_as()
        if cap is not None:
            limits.append(cap - status["VmSize"])
        available = _mem_available()
        if available is not None:
            limits.append(available)
        cgroup = _cgroup_left()
        if cgroup is not None:
            limits.append(cgroup)
        if self.target_bytes is not None:
            base = status["VmRSS"] if self._base_rss is None else self._base_rss
            used = self.model_bytes + max(0, status["VmRSS"] - base)
            limits.append(self.target_bytes - used)
        return min(limits) if limits else None

    def start(self) -> None:
        with contextlib.suppress(OSError), open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        self._start = _proc_status()
        if self._base_rss is None:
            self._base_rss = self._start["VmRSS"]
        self._budget = self.budget_now(self._start)

    def stop(self) -> Reading:
        if self._start is None:
            return Reading()
        end = _proc_status()
        peak = max(0, end["VmHWM"] - self._start["VmRSS"])
        budget = self._budget
        headroom = None if budget is None else budget - peak
        self._start = None
        return Reading(peak_bytes=peak, headroom_bytes=headroom, budget_bytes=budget)

    def over_budget(self, reading: Reading) -> bool:
        """Only a user-named target turns a reading into a failure on the host."""
        return reading.exceeds(self.target_bytes)


def host_meter(target_bytes: int | None = None, model_bytes: int = 0) -> ProcessMeter | NullMeter:
    """The process meter where ``/proc`` supports it, else a :class:`NullMeter`.

    ``WANDB_BATCHSIZE_NO_PROCESS_METER=1`` switches the readings off (the search
    then doubles and bisects, as without readings).
    """
    if os.environ.get("WANDB_BATCHSIZE_NO_PROCESS_METER"):
        return NullMeter()
    if not process_meter_supported():
        return NullMeter()
    return ProcessMeter(target_bytes, model_bytes)

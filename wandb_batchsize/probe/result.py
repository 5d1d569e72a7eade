"""What a probe found: one record per run, and the result over all sizes."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

STATUSES = ("ok", "oom", "diverged", "skipped")

@dataclass(frozen=True)
class ProbeRecord:
    """One probe: a batch size trained for ``steps`` steps from the shared start.

    ``metric`` is the number analysed (``train_loss`` or ``val_loss``, see
    ``ProbeResult.metric``); NaN unless ``status == "ok"``. ``seconds`` is the
    training time of the probe; ``throughput`` (samples/s) leaves out the first
    step, which carries warm-up (compilation, allocator growth).
    """

    batch_size: int
    repeat: int
    seed: int
    status: str
    metric: float
    train_loss: float
    val_loss: float | None
    samples: int
    steps: int
    seconds: float
    throughput: float
    lr: float | None = None
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


TABLE_COLUMNS = [
    "batch_size",
    "repeat",
    "seed",
    "status",
    "metric",
    "train_loss",
    "val_loss",
    "samples",
    "steps",
    "seconds",
    "throughput",
    "lr",
    "note",
]


@dataclass(frozen=True)
class ProbeResult:
    """What ``probe_batch_sizes`` found: the probe table and its sweep-mode analysis.

    ``records`` has one row per (size, repeat), including sizes that ran out of
    memory, diverged or were skipped (``status``); ``sweep`` is the
    ``SweepResult`` of the successful rows, or None when fewer than four
    distinct sizes succeeded (``message`` then says why). ``K_c`` is the batch
    size where the metric changes fastest with log10(B): past it, larger
    batches cost more in the metric for the same data (equal-samples budget).
    """

    records: tuple[ProbeRecord, ...]
    sweep: Any | None
    metric: str
    budget: str
    samples_per_size: int | None
    framework: str
    left_out: dict[int, str] = field(default_factory=dict)
    message: str = ""

    @property
    def K_c(self) -> float | None:
        return None if self.sweep is None else float(self.sweep.K_c)

    @property
    def batch_sizes(self) -> list[int]:
        """The sizes with at least one successful probe."""
        return sorted({r.batch_size for r in self.records if r.status == "ok"})

    @property
    def oom_batch_sizes(self) -> list[int]:
        return sorted({r.batch_size for r in self.records if r.status == "oom"})

    def table(self) -> list[dict[str, Any]]:
        """The probe table, one dict per (size, repeat)."""
        return [r.as_dict() for r in self.records]

    def per_size(self) -> list[dict[str, Any]]:
        """One row per batch size: metric mean, its standard error, runs, cost."""
        rows = []
        for b in sorted({r.batch_size for r in self.records}):
            group = [r for r in self.records if r.batch_size == b]
            ok = [r for r in group if r.status == "ok"]
            values = np.array([r.metric for r in ok], dtype=float)
            n = len(values)
            rows.append(
                {
                    "batch_size": b,
                    "status": "ok" if ok else group[0].status,
                    "metric_mean": float(values.mean()) if n else float("nan"),
                    "metric_se": float(values.std(ddof=1) / math.sqrt(n))
                    if n > 1
                    else float("nan"),
                    "n_runs": n,
                    "samples": ok[0].samples if ok else 0,
                    "steps": ok[0].steps if ok else 0,
                    "seconds": float(np.mean([r.seconds for r in ok])) if ok else float("nan"),
                    "throughput": float(np.mean([r.throughput for r in ok]))
                    if ok
                    else float("nan"),
                    "note": "" if ok else group[0].note,
                }
            )
        return rows

    def summary(self) -> str:
        """A printable report: the per-size table, then the sweep-mode result."""
        label = self.metric
        budget = (
            f"equal samples ({self.samples_per_size:,} per size)"
            if self.budget == "samples"
            else "equal steps (published behaviour: larger batches see more data)"
        )
        lines = [
            f"Batch-size probe ({self.framework}): metric {label}, budget {budget}",
            f"{'batch':>7} {'status':>9} {label:>12} {'± se':>8} {'runs':>4} "
            f"{'steps':>7} {'samples':>10} {'seconds':>8} {'samples/s':>10}",
        ]
        for row in self.per_size():
            se = row["metric_se"]
            lines.append(
                f"{row['batch_size']:>7d} {row['status']:>9} {_fmt(row['metric_mean'], 12, 4)} "
                f"{_fmt(se, 8, 4)} {row['n_runs']:>4d} {row['steps']:>7d} {row['samples']:>10,d} "
                f"{_fmt(row['seconds'], 8, 2)} {_fmt(row['throughput'], 10, 0)}"
                + (f"  ({row['note']})" if row["note"] else "")
            )
        for b, why in sorted(self.left_out.items()):
            lines.append(f"{b:>7d} {'left out':>9}  ({why})")
        if self.sweep is not None:
            lines.append("")
            lines.append(self.sweep.summary())
        else:
            lines.append("")
            lines.append(f"No sweep analysis: {self.message}")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "budget": self.budget,
            "samples_per_size": self.samples_per_size,
            "framework": self.framework,
            "K_c": self.K_c,
            "records": self.table(),
            "left_out": {str(k): v for k, v in self.left_out.items()},
            "sweep": None if self.sweep is None else self.sweep.to_dict(),
            "message": self.message,
        }


def _fmt(value: float, width: int, decimals: int) -> str:
    if value is None or not math.isfinite(value):
        return f"{'-':>{width}}"
    return f"{value:>{width},.{decimals}f}"

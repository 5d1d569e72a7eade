"""The framework-free part of a batch-size probe: sizes, budget, the driver loop,
the result table, the sweep-mode analysis and W&B logging.

A probe trains briefly at each batch size from the same starting weights, with
a fresh optimizer and the same seed, and records one number per run: the mean
training loss over the last third of the probe (the published definition) or,
when a validation set is given, the validation loss after it. The pairs
``(batch size, metric)`` are then analysed in sweep mode (``analyze_sweep``,
``spec/susceptibility.md``): ``chi = |dM / d log10 B|`` and ``K_c`` where the
metric changes fastest with the batch size.

The budget. The published ``find_optimal_batch_size`` gives every size the same
number of *steps*, so a batch of 512 sees 16x the data a batch of 32 sees and
looks better for that reason alone. Here the default is the same number of
*samples* per size (``budget="samples"``): every size costs about the same
compute and the comparison is the one that matters when choosing a batch size
for a fixed data budget. ``budget="steps"`` reproduces the published behaviour.

Nothing here imports a framework or wandb (wandb only once a run is active);
``torch_probe``, ``lightning_probe`` and ``keras_probe`` supply a backend with
``restore``, ``train``, ``is_oom`` and ``release``.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol, TextIO

import numpy as np

from wandb_batchsize.analysis.sweep import analyze_sweep
from wandb_batchsize.backends.oom import short_message
from wandb_batchsize.tracking import keys

BUDGETS = ("samples", "steps")
METRICS = ("auto", "train_loss", "val_loss")
LR_RULES = (None, "linear", "sqrt")
STATUSES = ("ok", "oom", "diverged", "skipped")

#: smallest default batch size, and the top of the default range when no
#: memory ceiling (``max_batch``) is known
DEFAULT_SMALLEST = 8
DEFAULT_LARGEST = 1024
#: a size given fewer steps than this by the budget is not probed
MIN_STEPS = 3
MIN_SIZES_FOR_ANALYSIS = 4


# ---------------------------------------------------------------------------
# sizes and budget
# ---------------------------------------------------------------------------


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


# ---------------------------------------------------------------------------
# the result
# ---------------------------------------------------------------------------


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


# ---------------------------------------------------------------------------
# the driver
# ---------------------------------------------------------------------------


@dataclass
class TrainOutcome:
    """What a backend returns for one probe."""

    losses: Sequence[float]
    seconds: float
    warmup_seconds: float
    val_loss: float | None = None
    lr: float | None = None
    samples: int | None = None  # when the backend counted real samples


class ProbeBackend(Protocol):
    """A framework adapter: one probe at a time, from the shared starting state."""

    def restore(self) -> None:
        """Put the model, RNG and everything a probe touches back to the start."""

    def train(
        self,
        batch_size: int,
        steps: int,
        seed: int,
        lr_factor: float,
        on_step: Callable[[int], None],
    ) -> TrainOutcome:
        """Train ``steps`` steps at ``batch_size`` with a fresh optimizer, seeded with ``seed``."""

    def is_oom(self, exc: BaseException) -> bool: ...

    def release(self, exc: BaseException | None = None) -> None:
        """Free what a failed or finished probe held (an OOM's frames, gc, caches)."""


def run_probes(
    backend: ProbeBackend,
    plan: BudgetPlan,
    *,
    repeats: int = 1,
    seed: int = 0,
    lr_scaling: str | None = None,
    base_batch_size: int | None = None,
    use_val: bool = False,
    progress: Progress | None = None,
) -> list[ProbeRecord]:
    """Probe every size in ``plan`` (ascending), ``repeats`` times each.

    Repeat ``r`` uses seed ``seed + r`` at every size (common random numbers:
    sizes differ by their batch size, not their luck). The backend restores the
    shared starting state before each probe and once more at the end, also when
    a probe raises. A size that runs out of memory is recorded (``"oom"``) and
    every larger size is skipped; any other error propagates.
    """
    repeats = int(repeats)
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    sizes = plan.batch_sizes
    base = int(base_batch_size) if base_batch_size is not None else sizes[0]
    progress = progress or Progress(enabled=False)
    records: list[ProbeRecord] = []
    oom_at: int | None = None
    try:
        for b in sizes:
            steps = plan.steps[b]
            factor = lr_factor(b, base, lr_scaling)
            if oom_at is not None:
                note = f"not probed: {oom_at} already ran out of memory"
                records.append(_empty_record(b, 0, seed, "skipped", note))
                progress.size_done(b, [records[-1]])
                continue
            group: list[ProbeRecord] = []
            for r in range(repeats):
                backend.restore()
                progress.start_probe(b, r, repeats, steps)
                oom_note = None
                try:
                    outcome = backend.train(b, steps, seed + r, factor, progress.step)
                except Exception as exc:
                    if not backend.is_oom(exc):
                        raise
                    oom_note = f"out of memory: {short_message(exc)}"
                    backend.release(exc)  # clears the frames that hold the step's tensors
                if oom_note is not None:
                    group.append(_empty_record(b, r, seed + r, "oom", oom_note))
                    oom_at = b
                    break
                group.append(_record(b, r, seed + r, steps, outcome, use_val))
            records.extend(group)
            progress.size_done(b, group)
    finally:
        progress.close()
        backend.restore()
        backend.release()
    return records


def _empty_record(b: int, r: int, seed: int, status: str, note: str) -> ProbeRecord:
    nan = float("nan")
    return ProbeRecord(b, r, seed, status, nan, nan, None, 0, 0, 0.0, nan, None, note)


def _record(b: int, r: int, seed: int, steps: int, out: TrainOutcome, use_val: bool) -> ProbeRecord:
    losses = np.asarray([float(v) for v in out.losses], dtype=float)
    samples = int(out.samples) if out.samples is not None else len(losses) * b
    train_loss = last_third_mean(losses)
    val_loss = None if out.val_loss is None else float(out.val_loss)
    metric = val_loss if use_val else train_loss
    status, note = "ok", ""
    if len(losses) < steps:
        note = f"the data ran out after {len(losses)} of {steps} steps"
    if not np.all(np.isfinite(losses)) or metric is None or not math.isfinite(metric):
        bad = int(np.argmax(~np.isfinite(losses))) if not np.all(np.isfinite(losses)) else -1
        status = "diverged"
        note = f"non-finite loss at step {bad + 1}" if bad >= 0 else "non-finite validation loss"
        metric = float("nan")
    timed = max(out.seconds - out.warmup_seconds, 0.0)
    per_step = samples / max(len(losses), 1)
    throughput = (
        (len(losses) - 1) * per_step / timed
        if len(losses) > 1 and timed > 0
        else (samples / out.seconds if out.seconds > 0 else float("nan"))
    )
    return ProbeRecord(
        batch_size=b,
        repeat=r,
        seed=seed,
        status=status,
        metric=float(metric),
        train_loss=train_loss,
        val_loss=val_loss,
        samples=samples,
        steps=len(losses),
        seconds=float(out.seconds),
        throughput=float(throughput),
        lr=None if out.lr is None else float(out.lr),
        note=note,
    )


def choose_metric(metric: str, has_val: bool) -> str:
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
    if metric == "auto":
        return "val_loss" if has_val else "train_loss"
    if metric == "val_loss" and not has_val:
        raise ValueError('metric="val_loss" needs validation data (val_data=...)')
    return metric


def analyze_records(
    records: Sequence[ProbeRecord], *, n_bootstrap: int = 1000, seed: int = 0
) -> tuple[Any | None, str]:
    """Sweep-mode analysis of the successful probes, or (None, why not)."""
    ok = [r for r in records if r.status == "ok"]
    distinct = sorted({r.batch_size for r in ok})
    if len(distinct) < MIN_SIZES_FOR_ANALYSIS:
        return None, (
            f"only {len(distinct)} batch size(s) probed successfully ({distinct}); the sweep "
            f"analysis needs at least {MIN_SIZES_FOR_ANALYSIS} distinct sizes. Give more "
            "batch_sizes, a larger budget, or a higher memory ceiling."
        )
    try:
        sweep = analyze_sweep(
            [r.batch_size for r in ok],
            [r.metric for r in ok],
            n_bootstrap=n_bootstrap,
            seed=seed,
            metric_kind="loss",
        )
    except ValueError as exc:
        return None, f"the sweep analysis failed: {exc}"
    return sweep, ""


def build_result(
    records: Sequence[ProbeRecord],
    plan: BudgetPlan,
    *,
    metric: str,
    framework: str,
    left_out: dict[int, str],
    n_bootstrap: int = 1000,
    seed: int = 0,
    log_to_wandb: bool = True,
) -> ProbeResult:
    """Analyse, warn when there is no analysis, log to the active W&B run."""
    sweep, message = analyze_records(records, n_bootstrap=n_bootstrap, seed=seed)
    result = ProbeResult(
        records=tuple(records),
        sweep=sweep,
        metric=metric,
        budget=plan.budget,
        samples_per_size=plan.samples_per_size,
        framework=framework,
        left_out={**left_out, **plan.left_out},
        message=message,
    )
    if sweep is None:
        import warnings

        warnings.warn(f"probe_batch_sizes: {message}", RuntimeWarning, stacklevel=3)
    if log_to_wandb:
        log_probe(result)
    return result


# ---------------------------------------------------------------------------
# W&B
# ---------------------------------------------------------------------------


def log_probe(
    result: ProbeResult, run: Any | None = None, *, prefix: str = keys.PROBE_PREFIX
) -> bool:
    """Log the probe table, the chi(K) chart and ``probe/K_c`` to the active W&B run.

    Keys: ``probe/table`` (a ``wandb.Table`` of every probe), ``probe/chi_chart``
    and ``probe/V_chart`` (chi and the metric against the batch size, on the
    built-in line preset), summary ``probe/K_c``, ``probe/kappa``,
    ``probe/K_c_low``/``probe/K_c_high`` (bootstrap interval with repeats),
    ``probe/metric``, ``probe/budget``, ``probe/samples_per_size``,
    ``probe/oom_batch_size``. Does nothing without a run; never raises.
    """
    from wandb_batchsize.tracking.run import WandbSink

    sink = WandbSink(run, name="probe_batch_sizes")
    if not sink.enabled:
        return False
    try:
        import wandb

        rows = [[_cell(row[c]) for c in TABLE_COLUMNS] for row in result.table()]
        table = wandb.Table(columns=TABLE_COLUMNS, data=rows)
    except Exception as exc:  # noqa: BLE001 - W&B must never stop the caller
        return sink._guard("table", _raise, exc)
    summary: dict[str, Any] = {
        f"{prefix}/metric": result.metric,
        f"{prefix}/budget": result.budget,
        f"{prefix}/n_sizes": len(result.batch_sizes),
    }
    if result.samples_per_size is not None:
        summary[f"{prefix}/samples_per_size"] = result.samples_per_size
    if result.oom_batch_sizes:
        summary[f"{prefix}/oom_batch_size"] = result.oom_batch_sizes[0]
    sweep = result.sweep
    if sweep is None:
        ok = sink.log({f"{prefix}/table": table})
        summary[f"{prefix}/message"] = result.message
    else:
        scalars = {f"{prefix}/K_c": float(sweep.K_c), f"{prefix}/kappa": float(sweep.kappa)}
        interval = getattr(sweep, "K_c_interval", None)
        if interval is not None and all(_finite(v) for v in interval):
            scalars[f"{prefix}/K_c_low"] = float(interval[0])
            scalars[f"{prefix}/K_c_high"] = float(interval[1])
        from wandb_batchsize.tracking.charts import log_susceptibility_charts

        # one history row: the table, the charts and the scalars together
        ok = log_susceptibility_charts(
            sink,
            sweep,
            prefix=prefix,
            extra={f"{prefix}/table": table, **scalars},
            value_label=result.metric,
        )
        summary.update(scalars)
    return sink.summary_update(summary) and ok


def _finite(value: Any) -> bool:
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


def _cell(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _raise(exc: Exception) -> None:
    raise exc


# ---------------------------------------------------------------------------
# progress
# ---------------------------------------------------------------------------


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

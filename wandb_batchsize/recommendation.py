"""One batch size from every signal: memory ceiling, noise scale, sweep, susceptibility.

:func:`recommend` takes whatever is available and returns a
:class:`Recommendation`: the batch size, the micro-batch and accumulation steps
that reach it under the memory ceiling, the learning rate scaled from a
reference, and a plain-language reason that names the signal that decided and
how sure it is. How each signal is weighed, strongest first:

1. **Sweep ``B_crit``** (``analyze_sweep(..., metric_kind="steps_to_target")``):
   the empirical critical batch size of the McCandlish et al. (2018) trade-off
   ``S = S_min (1 + B_noise / B)``, measured on this task. Direct evidence.
2. **Gradient noise scale ``B_simple``**: ``tr(Sigma) / |G|^2``, measured
   during training. It predicts the critical batch only up to a factor
   (``B_simple = B_noise`` when the Hessian is a multiple of the identity;
   McCandlish et al. find ``B_crit ~ B_noise`` with ``B_simple`` usually within
   a small factor), so it decides with at most *medium* confidence.
3. **Sweep ``K_c``** (no ``B_crit``): the batch size at which the sweep's
   metric changes fastest with ``log B``. In examples, but a knee of a curve,
   not a trade-off optimum: *low* confidence.
4. **Susceptibility ``K_c``** of a training-loss series: measured in *logged
   steps*, not examples. It is a correlation scale of the optimizer's
   trajectory, not by itself a batch size, so it never sets the number; it is
   reported in the reason as context.
5. **Memory ceiling**: a cap, never a target on its own merits. With step
   times from the memory search's probes and a noise scale, the batch is
   chosen by goodput (Pollux, Qiao et al. 2021; ``analysis.goodput``):
   ``B / t(B) * (phi + B0) / (phi + B)``, so a batch past the point of
   diminishing statistical returns is not chosen just because it fits. With
   only the ceiling, the ceiling is returned, flagged as statistically
   uninformed.

The learning rate comes from :func:`wandb_batchsize.analysis.schedules.scale_schedule`
(linear or square-root scaling from ``reference_lr`` at ``reference_batch``),
and the accumulation from :func:`wandb_batchsize.memory.accumulation_for`.
Logged to W&B (config and summary) as ``recommendation/*``.

numpy only; no framework and no wandb import unless there is a run to log to.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from wandb_batchsize.analysis.goodput import GoodputChoice, best_goodput, step_times_from_probes
from wandb_batchsize.tracking import keys

__all__ = ["Recommendation", "recommend"]

_CONFIDENCE = ("low", "medium", "high")


@dataclass(frozen=True)
class Recommendation:
    """A batch size with the learning rate and accumulation that go with it.

    Attributes:
        batch_size: effective examples per optimizer step (``micro_batch_size *
            accumulation_steps``).
        micro_batch_size: examples per forward/backward, at most ``ceiling``.
        accumulation_steps: micro-batches per optimizer step.
        learning_rate: scaled from ``reference_lr`` (None without one).
        decided_by: ``"sweep"`` (B_crit), ``"noise_scale"`` (B_simple),
            ``"sweep_knee"`` (sweep K_c), ``"goodput"`` or ``"memory"``.
        confidence: ``"high"``, ``"medium"`` or ``"low"``.
        reason: the plain-language explanation.
        target: the statistical target in examples before rounding and capping
            (None when no statistical signal was given).
        ceiling: the memory ceiling used (None when unknown).
        signals: every input seen and how it was used.
        goodput: the goodput table, when step times were available.
        schedule: the :class:`~wandb_batchsize.analysis.schedules.Schedule`
            from ``scale_schedule`` (epochs, lr, steps factor), when computed.
    """

    batch_size: int
    micro_batch_size: int
    accumulation_steps: int
    learning_rate: float | None
    decided_by: str
    confidence: str
    reason: str
    target: float | None = None
    ceiling: int | None = None
    lr_scaling: str | None = None
    signals: dict[str, Any] = field(default_factory=dict, compare=False)
    goodput: GoodputChoice | None = field(default=None, compare=False)
    schedule: Any = field(default=None, compare=False)

    def __int__(self) -> int:
        return self.batch_size

    def config(self) -> dict[str, Any]:
        """The ``recommendation/*`` keys for ``wandb.config``."""
        prefix = keys.RECOMMENDATION_PREFIX
        cfg: dict[str, Any] = {
            keys.RECOMMENDATION_BATCH_SIZE: self.batch_size,
            keys.RECOMMENDATION_ACCUMULATION_STEPS: self.accumulation_steps,
            f"{prefix}/micro_batch_size": self.micro_batch_size,
            f"{prefix}/decided_by": self.decided_by,
            f"{prefix}/confidence": self.confidence,
        }
        if self.learning_rate is not None:
            cfg[keys.RECOMMENDATION_LR] = self.learning_rate
            cfg[f"{prefix}/lr_scaling"] = self.lr_scaling
        return cfg

    def summary(self) -> dict[str, Any]:
        """The ``recommendation/*`` keys for the run summary: config, reason, inputs."""
        prefix = keys.RECOMMENDATION_PREFIX
        out = dict(self.config())
        out[f"{prefix}/reason"] = self.reason
        if self.target is not None and math.isfinite(self.target):
            out[f"{prefix}/target"] = self.target
        if self.ceiling is not None:
            out[f"{prefix}/ceiling"] = self.ceiling
        for name, info in self.signals.items():
            value = info.get("value")
            if isinstance(value, int | float) and math.isfinite(value):
                out[f"{prefix}/signals/{name}"] = value
        return out

    def log(self, run: Any | None = None) -> bool:
        """Write :meth:`config` and :meth:`summary` to ``run`` (default: the active run).

        Returns True when W&B accepted both; never raises (no run: False).
        """
        from wandb_batchsize.tracking.run import WandbSink

        sink = WandbSink(run, name="wandb-batchsize recommend")
        if not sink.enabled:
            return False
        ok = sink.config_update(self.config())
        return sink.summary_update(self.summary()) and ok

    def __str__(self) -> str:
        return self.reason


# -- reading the inputs (duck-typed) ------------------------------------------------


def _finite(x: Any) -> float | None:
    try:
        value = float(x)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def _interval(x: Any) -> tuple[float, float] | None:
    if x is None:
        return None
    try:
        lo, hi = (float(v) for v in x)
    except (TypeError, ValueError):
        return None
    if math.isnan(lo) or math.isnan(hi):
        return None
    return lo, hi


def _ratio_confidence(interval: tuple[float, float] | None, *, high: float, medium: float) -> str:
    """Confidence from the width of an interval, as the ratio upper / lower."""
    if interval is None:
        return "medium"
    lo, hi = interval
    if not (math.isfinite(hi) and lo > 0):
        return "low"
    ratio = hi / lo
    return "high" if ratio <= high else "medium" if ratio <= medium else "low"


def _cap(conf: str, most: str) -> str:
    return _CONFIDENCE[min(_CONFIDENCE.index(conf), _CONFIDENCE.index(most))]


def _fmt(x: float) -> str:
    if not math.isfinite(x):
        return "inf"
    return f"{x:.0f}" if abs(x) >= 10 else f"{x:.3g}"


def _fmt_interval(interval: tuple[float, float] | None) -> str:
    if interval is None:
        return ""
    lo, hi = interval
    return f"{_fmt(lo)}-{_fmt(hi)}" if math.isfinite(hi) else f">= {_fmt(lo)}"


def _read_memory(memory: Any) -> tuple[int | None, tuple[Any, ...], int | None, dict[str, Any]]:
    """``(ceiling, probes, multiple_of, signal)`` from a search result or an int."""
    if memory is None:
        return None, (), None, {}
    if isinstance(memory, int | float) and not isinstance(memory, bool):
        ceiling = int(memory)
        if ceiling < 1:
            raise ValueError(f"memory ceiling must be a positive batch size, got {memory!r}")
        return ceiling, (), None, {"value": ceiling, "source": "given"}
    ceiling = getattr(memory, "batch_size", None)
    if ceiling is None:
        raise TypeError(
            "memory must be a batch-size ceiling (int) or a memory search result with "
            f".batch_size and .probes (find_batch_size(...)), got {type(memory).__name__}"
        )
    probes = tuple(getattr(memory, "probes", ()) or ())
    signal = {
        "value": int(ceiling),
        "max_fitting": getattr(memory, "max_fitting", None),
        "source": "memory search",
    }
    return int(ceiling), probes, getattr(memory, "multiple_of", None), signal


def _read_noise_scale(noise_scale: Any) -> tuple[float | None, tuple[float, float] | None]:
    if noise_scale is None:
        return None, None
    if isinstance(noise_scale, int | float):
        return _finite(noise_scale), None
    if not hasattr(noise_scale, "B_simple") and hasattr(noise_scale, "result"):
        noise_scale = noise_scale.result()  # a monitor or a streaming estimator
    value = getattr(noise_scale, "B_simple", None)
    if value is None:
        raise TypeError(
            "noise_scale must be a number or a NoiseScaleResult (with .B_simple), "
            f"got {type(noise_scale).__name__}"
        )
    value = float(value)
    interval = _interval(getattr(noise_scale, "B_simple_interval", None))
    if math.isinf(value) and value > 0:
        # |G|^2 not measurably positive: only a lower bound is known
        return math.inf, interval
    return _finite(value), interval


def _inf_confidence(interval: tuple[float, float] | None, ceiling: int | None) -> str:
    """With ``B_simple`` unbounded: medium when its lower bound clears the ceiling."""
    if interval is None or ceiling is None:
        return "low"
    return "medium" if interval[0] >= ceiling else "low"


def _round_batch(x: float, multiple_of: int) -> int:
    if x < multiple_of or multiple_of <= 1:
        return max(1, round(x))
    return max(multiple_of, round(x / multiple_of) * multiple_of)


# -- the decision ---------------------------------------------------------------------


def recommend(
    memory: Any = None,
    noise_scale: Any = None,
    susceptibility: Any = None,
    sweep: Any = None,
    *,
    reference_batch: int | None = None,
    reference_lr: float | None = None,
    lr_scaling: str = "linear",
    reference_epochs: float | None = None,
    multiple_of: int | None = None,
    log: bool = True,
    run: Any | None = None,
) -> Recommendation:
    """Combine the available signals into one batch size (see the module docstring).

    Args:
        memory: the ceiling: a ``MemorySearchResult`` (its ``batch_size`` caps
            the micro-batch; its timed ``probes`` give step times for goodput)
            or a plain int.
        noise_scale: a ``NoiseScaleResult`` (``B_simple`` with its band), a
            monitor with ``.result()``, or a number (examples).
        susceptibility: a ``SusceptibilityResult`` (``K_c`` in logged steps,
            ``is_significant``, ``p_iid``, ``kappa``): context only.
        sweep: a ``SweepResult`` (``B_crit``, ``B_crit_interval``, ``K_c``).
        reference_batch, reference_lr: the batch size and learning rate the
            current recipe was tuned at; with both, the learning rate is scaled
            (``lr_scaling="linear"`` (Goyal et al. 2017, SGD) or ``"sqrt"``
            (Adam-type)) and ``reference_batch`` is the goodput reference ``B0``.
        reference_epochs: with it, ``schedule`` also carries the epoch count
            from ``scale_schedule`` (``keep="critical"`` with the noise scale
            as ``B_crit`` when one is known, else ``keep="samples"``).
        multiple_of: rounding of a statistical target (default: the memory
            search's, else 8).
        log: write ``recommendation/*`` to the W&B run (``run`` or the active one).

    Raises ``ValueError`` when no signal was given.
    """
    ceiling, probes, mem_multiple, mem_signal = _read_memory(memory)
    multiple = int(multiple_of or mem_multiple or 8)
    if multiple < 1:
        raise ValueError(f"multiple_of must be >= 1, got {multiple_of}")
    if lr_scaling not in ("linear", "sqrt"):
        raise ValueError(f"lr_scaling must be 'linear' or 'sqrt', got {lr_scaling!r}")

    signals: dict[str, dict[str, Any]] = {}
    if mem_signal:
        signals["ceiling"] = {**mem_signal, "used_for": "cap on the micro-batch"}

    b_simple, b_simple_interval = _read_noise_scale(noise_scale)
    b_crit = b_crit_interval = sweep_knee = None
    if sweep is not None:
        b_crit = _finite(getattr(sweep, "B_crit", None))
        if b_crit is not None and b_crit <= 0:
            b_crit = None
        b_crit_interval = _interval(getattr(sweep, "B_crit_interval", None))
        sweep_knee = _finite(getattr(sweep, "K_c", None))
    sus_kc = _finite(getattr(susceptibility, "K_c", None)) if susceptibility is not None else None

    if all(v is None for v in (ceiling, b_simple, b_crit, sweep_knee)):
        if sus_kc is not None:
            raise ValueError(
                "a susceptibility K_c alone cannot give a batch size: it is a correlation "
                "scale in logged steps, not examples. Also pass a memory ceiling, a noise "
                "scale or a batch-size sweep result"
            )
        raise ValueError(
            "nothing to recommend from: pass at least one of memory= (ceiling or "
            "find_batch_size result), noise_scale= (B_simple), sweep= (analyze_sweep result)"
        )

    # 1. the statistical target, strongest signal first
    target: float | None = None
    source = confidence = ""
    notes: list[str] = []
    if b_crit is not None:
        target, source = b_crit, "sweep"
        confidence = _ratio_confidence(b_crit_interval, high=2.0, medium=4.0)
        what = f"the batch-size sweep's empirical critical batch size B_crit = {_fmt(b_crit)}" + (
            f" (interval {_fmt_interval(b_crit_interval)})" if b_crit_interval else ""
        )
    elif b_simple is not None and math.isfinite(b_simple):
        target, source = b_simple, "noise_scale"
        confidence = _cap(_ratio_confidence(b_simple_interval, high=1.5, medium=3.0), "medium")
        what = (
            f"the gradient noise scale B_simple = {_fmt(b_simple)}"
            + (f" (band {_fmt_interval(b_simple_interval)})" if b_simple_interval else "")
            + ", which estimates the critical batch size only up to a factor"
        )
    elif sweep_knee is not None:
        target, source, confidence = sweep_knee, "sweep_knee", "low"
        what = (
            f"the batch size where the sweep's metric changes fastest, K_c = {_fmt(sweep_knee)} "
            "(no B_crit fit: a knee of the curve, not a time/data optimum)"
        )
    else:
        what = ""

    if b_simple is not None and math.isinf(b_simple):
        notes.append(
            "The gradient noise scale is too large to measure yet (|G|^2 not significantly "
            f"above zero; B_simple >= {_fmt(b_simple_interval[0]) if b_simple_interval else '?'}"
            "): larger batches still pay off statistically."
        )
        signals["B_simple"] = {
            "value": math.inf,
            "interval": b_simple_interval,
            "used_for": "context (lower bound only)",
        }
    elif b_simple is not None:
        signals["B_simple"] = {
            "value": b_simple,
            "interval": b_simple_interval,
            "used_for": "decided the target" if source == "noise_scale" else "cross-check",
        }
    if b_crit is not None:
        signals["B_crit"] = {
            "value": b_crit,
            "interval": b_crit_interval,
            "used_for": "decided the target",
        }
    if sweep_knee is not None:
        signals["sweep_K_c"] = {
            "value": sweep_knee,
            "used_for": "decided the target" if source == "sweep_knee" else "context",
        }
    if source == "sweep" and b_simple is not None and math.isfinite(b_simple) and b_simple > 0:
        ratio = max(b_crit / b_simple, b_simple / b_crit)
        notes.append(
            f"The gradient noise scale B_simple = {_fmt(b_simple)} "
            + (
                f"agrees within a factor {ratio:.1f}."
                if ratio <= 3
                else f"differs by a factor {ratio:.1f} (expected: B_simple ignores the "
                "curvature that B_crit reflects); the measured B_crit is trusted."
            )
        )

    # 2. the efficiency scale for goodput: the measured B_crit, else B_simple
    phi = b_crit if b_crit is not None else b_simple
    phi_name = "B_crit" if b_crit is not None else "B_simple" if b_simple is not None else None

    # 3. the decision
    sizes, _ = step_times_from_probes(probes)
    timed = sizes[sizes <= ceiling] if ceiling is not None and sizes.size else sizes
    choice: GoodputChoice | None = None
    if ceiling is not None and timed.size >= 2:
        noise = phi if phi is not None else math.inf
        choice = best_goodput(
            probes, noise, reference_batch=reference_batch, ceiling=ceiling, multiple_of=multiple
        )
        batch, micro, steps = choice.batch_size, choice.batch_size, 1
        decided_by = "goodput"
        if phi is None or math.isinf(phi):
            if phi is None:
                confidence = "low"
                why = "no noise scale or sweep, so no statistical efficiency"
            else:
                confidence = _inf_confidence(b_simple_interval, ceiling)
                why = "the noise scale is beyond measurement, so efficiency is about 1"
            decision = (
                f"Decided by measured throughput alone ({why}): "
                f"{_fmt(choice.throughput)} examples/s at batch {batch}."
            )
        else:
            confidence = confidence or "medium"
            decision = (
                f"Decided by goodput (Pollux): throughput from the memory search's step times "
                f"times statistical efficiency (phi + B0) / (phi + B) with phi = {phi_name} = "
                f"{_fmt(phi)}; best at batch {batch} (efficiency {choice.efficiency:.2f}, "
                f"{choice.gain_over_largest:.2f}x the goodput of the largest batch that fits, "
                f"{ceiling}). The statistical scale comes from {what}."
            )
            if target is not None and target > ceiling:
                notes.append(
                    f"The statistical target {_fmt(target)} exceeds the memory ceiling "
                    f"{ceiling}; gradient accumulation could reach it but would not raise "
                    "goodput on this device (same throughput, lower efficiency)."
                )
    elif target is not None:
        batch = _round_batch(target, multiple)
        decided_by = source
        decision = f"Decided by {what}, rounded to {batch}."
        micro, steps = batch, 1
        if ceiling is not None and batch > ceiling:
            from wandb_batchsize.memory import accumulation_for

            micro, steps = accumulation_for(batch, ceiling)
            batch = micro * steps
            decision += (
                f" It exceeds the memory ceiling {ceiling}: {steps} accumulation steps of "
                f"{micro} reach an effective batch of {batch}."
            )
        elif ceiling is not None:
            decision += f" It fits under the memory ceiling ({ceiling})."
    elif ceiling is None:  # only an unmeasurably large noise scale
        raise ValueError(
            "the gradient noise scale is beyond measurement (|G|^2 not significantly above "
            "zero), which says 'larger batches still pay off' but gives no number: pass the "
            "memory ceiling (memory=) to cap it, or measure over more steps"
        )
    else:  # the ceiling alone
        batch = micro = ceiling
        steps = 1
        decided_by = "memory"
        if b_simple is not None and math.isinf(b_simple):
            confidence = _inf_confidence(b_simple_interval, ceiling)
            decision = (
                f"The memory ceiling {ceiling}: the gradient noise scale is beyond measurement, "
                "so a batch this large is still statistically efficient as far as can be told."
            )
        else:
            confidence = "low"
            decision = (
                f"Only the memory ceiling is known: {ceiling} is the largest batch that fits, "
                "which says nothing about whether a batch that large still pays off "
                "statistically (pass a noise scale or a sweep result for that)."
            )

    if sus_kc is not None:
        significant = bool(getattr(susceptibility, "is_significant", False))
        p_iid = _finite(getattr(susceptibility, "p_iid", None))
        detail = "significant" if significant else "not significant"
        if p_iid is not None:
            detail += f", p_iid = {p_iid:.3g}"
        notes.append(
            f"Susceptibility K_c = {_fmt(sus_kc)} logged steps ({detail}) is a correlation "
            "scale of the loss trajectory in logged steps, not examples, and not by itself "
            "a batch size: reported, not used to set the batch."
        )
        signals["susceptibility_K_c"] = {
            "value": sus_kc,
            "is_significant": significant,
            "p_iid": p_iid,
            "kappa": _finite(getattr(susceptibility, "kappa", None)),
            "units": "logged steps",
            "used_for": "context only",
        }

    # 4. the learning rate
    lr: float | None = None
    schedule = None
    lr_note = ""
    if reference_lr is not None and reference_batch is not None:
        from wandb_batchsize.analysis.schedules import scale_schedule

        critical = phi if phi is not None and math.isfinite(phi) else None
        schedule = scale_schedule(
            reference_epochs if reference_epochs is not None else 1.0,
            int(reference_batch),
            int(batch),
            reference_lr=float(reference_lr),
            keep="critical" if critical is not None else "samples",
            critical_batch=critical,
            lr_scaling=lr_scaling,
        )
        lr = float(schedule.lr)
        lr_note = (
            f", learning rate {lr:.3g} ({lr_scaling} scaling from {reference_lr:g} "
            f"at batch {reference_batch})"
        )
        if reference_epochs is None:
            schedule = None
    elif reference_lr is not None or reference_batch is not None:
        notes.append("Pass both reference_lr and reference_batch to get a scaled learning rate.")

    head = f"Batch size {batch}"
    if steps > 1:
        head += f" ({steps} accumulation steps of {micro})"
    head += f"{lr_note}; confidence {confidence}."
    reason = " ".join([head, decision, *notes])

    rec = Recommendation(
        batch_size=int(batch),
        micro_batch_size=int(micro),
        accumulation_steps=int(steps),
        learning_rate=lr,
        decided_by=decided_by,
        confidence=confidence,
        reason=reason,
        target=target,
        ceiling=ceiling,
        lr_scaling=lr_scaling if lr is not None else None,
        signals=signals,
        goodput=choice,
        schedule=schedule,
    )
    if log:
        rec.log(run)
    return rec

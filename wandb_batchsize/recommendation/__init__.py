"""One batch size from every signal: memory ceiling, measured critical batch, sweep, noise scale.

:func:`recommend` takes whatever is available and returns a
:class:`Recommendation`: the batch size, the micro-batch and accumulation
steps that reach it under the memory ceiling, the learning rate that goes with
it, and a plain-language reason that names every signal it was given and what
it did with it.

- ``signals.py``: one reader per input (memory ceiling, ``CriticalBatchResult``,
  sweep ``B_crit`` and ``K_c``, ``B_simple``, susceptibility ``K_c``, probe
  ``K_c``);
- ``rules.py``: the ordered table of rules that sets the statistical target
  (a measured critical batch decides; ``B_simple`` alone only with low
  confidence and its caveat; a sweep knee gives a batch *below* it), and the
  sentence for every signal that did not decide;
- ``placement.py``: goodput or accumulation under the ceiling, and the
  learning rate (the measured saturating rule, else ``scale_schedule``);
- ``result.py``: :class:`Recommendation`, logged to W&B as ``recommendation/*``.

numpy only; no framework and no wandb import unless there is a run to log to.
"""

from __future__ import annotations

from typing import Any

from .placement import learning_rate, place
from .result import Recommendation
from .rules import annotate, statistical_target
from .signals import read_signals

__all__ = ["Recommendation", "recommend"]

_LR_RULES = (None, "saturating", "surge", "linear", "sqrt")


def recommend(
    memory: Any = None,
    noise_scale: Any = None,
    susceptibility: Any = None,
    sweep: Any = None,
    *,
    critical: Any = None,
    probe: Any = None,
    reference_batch: int | None = None,
    reference_lr: float | None = None,
    lr_scaling: str | None = None,
    optimizer: str | None = None,
    reference_epochs: float | None = None,
    multiple_of: int | None = None,
    log: bool = True,
    run: Any | None = None,
) -> Recommendation:
    """Combine the available signals into one batch size (see ``rules.py`` for the order).

    Args:
        memory: the ceiling: a ``MemorySearchResult`` (its ``batch_size`` caps
            the micro-batch; its timed ``probes`` give step times for goodput)
            or a plain int.
        noise_scale: a ``NoiseScaleResult`` (``B_simple`` with its band), a
            monitor with ``.result()``, or a number (examples). A noise-scale
            estimate, not the critical batch: alone it sets the batch with low
            confidence.
        susceptibility: a ``SusceptibilityResult`` (``K_c`` in logged steps):
            context only.
        sweep: a ``SweepResult``: its ``B_crit`` (steps-to-target fit) decides
            after a bracketed measurement; without one, its knee ``K_c`` gives
            a batch below the knee.
        critical: a ``CriticalBatchResult`` (``measure_critical_batch``): its
            ``B_crit`` decides (a lower bound when the knee was not bracketed)
            and its fitted lr rule gives the learning rate.
        probe: a ``ProbeResult`` (``probe_batch_sizes``): its ``K_c`` is a knee
            at a small fixed budget, reported as context only.
        reference_batch, reference_lr: the batch size and learning rate the
            current recipe was tuned at; ``reference_batch`` is also goodput's
            reference ``B0``.
        lr_scaling: the learning-rate rule: None (default: the measured rule
            of ``critical``; else ``"saturating"`` (SGD) / ``"surge"`` (Adam)
            once a critical batch or noise scale is known; else ``"linear"`` /
            ``"sqrt"``), or one of those names explicitly.
        optimizer: ``"sgd"`` or ``"adam"`` (default: ``critical.optimizer_kind``,
            else ``"sgd"``): which saturating rule applies.
        reference_epochs: with it, ``schedule`` also carries the epoch count
            from ``scale_schedule`` (``keep="critical"`` when a critical batch
            or noise scale is known, else ``keep="samples"``).
        multiple_of: rounding of a statistical target (default: the memory
            search's, else 8).
        log: write ``recommendation/*`` to the W&B run (``run`` or the active one).

    Raises ``ValueError`` when nothing given yields a batch size.
    """
    sig = read_signals(memory, critical, sweep, noise_scale, susceptibility, probe)
    multiple = int(multiple_of or sig.multiple_of or 8)
    if multiple < 1:
        raise ValueError(f"multiple_of must be >= 1, got {multiple_of}")
    if lr_scaling not in _LR_RULES:
        raise ValueError(f"lr_scaling must be one of {_LR_RULES[1:]} or None, got {lr_scaling!r}")
    measured_kind = sig.critical.info["optimizer_kind"] if sig.critical else None
    kind = optimizer or measured_kind or "sgd"
    if kind not in ("sgd", "adam"):
        raise ValueError(f"optimizer must be 'sgd' or 'adam', got {optimizer!r}")
    if optimizer is not None and measured_kind is not None and optimizer != measured_kind:
        raise ValueError(
            f"optimizer={optimizer!r} but the critical-batch measurement used "
            f"{measured_kind!r}: its batch size and learning rates hold for that optimizer"
        )

    target = statistical_target(sig)
    placed = place(sig, target, multiple, reference_batch)
    lr = learning_rate(
        sig, target, placed.batch, reference_batch=reference_batch, reference_lr=reference_lr,
        lr_scaling=lr_scaling, optimizer=kind, reference_epochs=reference_epochs,
    )  # fmt: skip
    noise_uses = ("goodput's efficiency scale",) if placed.used_phi else ()
    noise_uses += ("the lr rule's B_noise",) if lr.from_b_simple else ()
    annotate(sig, target, placed.batch, noise_uses, placed.decided_by)

    head = f"Batch size {placed.batch}"
    if placed.steps > 1:
        head += f" ({placed.steps} accumulation steps of {placed.micro})"
    head += f"{lr.phrase}; confidence {placed.confidence}."
    notes = [s.note for s in sig.all() if s.note]
    reason = " ".join([head, placed.decision, *placed.notes, *lr.notes, *notes])

    rec = Recommendation(
        batch_size=int(placed.batch),
        micro_batch_size=int(placed.micro),
        accumulation_steps=int(placed.steps),
        learning_rate=lr.lr,
        decided_by=placed.decided_by,
        confidence=placed.confidence,
        reason=reason,
        target=None if target is None else float(target.value),
        ceiling=None if sig.ceiling is None else int(sig.ceiling.value),
        lr_scaling=lr.rule_name,
        signals={s.key: s.record() for s in sig.all()},
        goodput=placed.goodput,
        schedule=lr.schedule,
        lr_rule=lr.rule,
    )
    if log:
        rec.log(run)
    return rec

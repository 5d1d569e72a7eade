"""From a statistical target to a batch this device runs, and the learning rate for it.

- :func:`place`: with timed probes under the memory ceiling, the batch with the
  highest goodput (Pollux, Qiao et al. 2021; ``analysis.goodput``)
  ``B / t(B) * (phi + B0) / (phi + B)``; else the target rounded to a multiple
  and reached with gradient accumulation (``memory.accumulation_for``) when it
  exceeds the ceiling; else the ceiling alone, flagged as statistically
  uninformed.
- :func:`learning_rate`: the lr rule a measurement fitted to its best lrs
  (``CriticalBatchResult.lr_max``, ``lr_B_noise``), else the saturating rule
  (SGD, McCandlish et al. 2018) or the surge rule (Adam, Li et al. 2024)
  through ``(reference_batch, reference_lr)`` once a noise scale is known,
  else linear (SGD) / square-root (Adam) scaling, with the warning that it has
  no limit (``analysis.schedules.scale_schedule``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from wandb_batchsize.analysis.goodput import GoodputChoice, best_goodput, step_times_from_probes
from wandb_batchsize.analysis.lr_rules import LR_RULES, LrRule, lr_rule_from_reference

from .rules import Target
from .signals import Signals, fmt

__all__ = ["LrChoice", "Placement", "learning_rate", "place"]

_RULE_FOR = {"sgd": "saturating", "adam": "surge"}
_UNLIMITED_FOR = {"sgd": "linear", "adam": "sqrt"}


@dataclass(frozen=True)
class Placement:
    batch: int
    micro: int
    steps: int
    decided_by: str
    confidence: str
    decision: str
    goodput: GoodputChoice | None
    notes: tuple[str, ...]
    used_phi: bool


def _round_batch(x: float, multiple_of: int) -> int:
    if x < multiple_of or multiple_of <= 1:
        return max(1, round(x))
    return max(multiple_of, round(x / multiple_of) * multiple_of)


def _inf_confidence(interval: tuple[float, float] | None, ceiling: int | None) -> str:
    """With ``B_simple`` unbounded: medium when its lower bound clears the ceiling."""
    if interval is None or ceiling is None:
        return "low"
    return "medium" if interval[0] >= ceiling else "low"


def _goodput(sig: Signals, target: Target | None, ceiling: int, limit: int, ref, multiple):
    noise = sig.noise
    inf_noise = noise is not None and noise.value is not None and math.isinf(noise.value)
    phi = target.phi if target is not None else None
    choice = best_goodput(
        sig.probes,
        phi if phi is not None else math.inf,
        reference_batch=ref,
        ceiling=limit,
        multiple_of=multiple,
    )
    batch = choice.batch_size
    below = f" (at most {limit}, the batch below the sweep knee)" if limit < ceiling else ""
    notes: list[str] = []
    if phi is None:
        if inf_noise:
            conf = _inf_confidence(noise.interval, ceiling)
            why = "the noise scale is beyond measurement, so efficiency is about 1"
        else:
            conf = "low" if target is None else target.confidence
            why = "no critical batch or noise scale, so no statistical efficiency"
        decision = (
            f"Decided by measured throughput alone ({why}) under the memory ceiling "
            f"{ceiling}{below}: {fmt(choice.throughput)} examples/s at batch {batch}."
        )
    else:
        conf = target.confidence
        name = "B_simple" if target.decided_by in ("noise_scale", "sweep_knee") else "B_crit"
        decision = (
            f"Decided by goodput (Pollux): throughput from the memory search's step times "
            f"times statistical efficiency (phi + B0) / (phi + B) with phi = {name} = "
            f"{fmt(phi)}; best at batch {batch}{below} (efficiency {choice.efficiency:.2f}, "
            f"{choice.gain_over_largest:.2f}x the goodput of the largest batch that fits under "
            f"the memory ceiling, {limit})."
        )
        if target.value > ceiling and target.upper is None:
            notes.append(
                f"The statistical target {fmt(target.value)} exceeds the memory ceiling "
                f"{ceiling}; gradient accumulation could reach it but would not raise "
                "goodput on this device (same throughput, lower efficiency)."
            )
    if target is not None:
        decision += f" The statistical target comes from {target.what}."
    return Placement(batch, batch, 1, "goodput", conf, decision, choice, tuple(notes),
                     phi is not None)  # fmt: skip


def place(sig: Signals, target: Target | None, multiple: int, reference_batch: Any) -> Placement:
    """The batch, micro-batch and accumulation for ``target`` under the ceiling (see module)."""
    ceiling = None if sig.ceiling is None else int(sig.ceiling.value)
    limit = ceiling
    if ceiling is not None and target is not None and target.upper is not None:
        limit = max(1, min(ceiling, int(target.upper)))
    sizes, _ = step_times_from_probes(sig.probes)
    if limit is not None and (sizes <= limit).sum() >= 2:
        return _goodput(sig, target, ceiling, limit, reference_batch, multiple)
    if target is not None:
        batch = _round_batch(target.value, multiple)
        decision = f"Decided by {target.what}; rounded to {batch}."
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
        return Placement(batch, micro, steps, target.decided_by, target.confidence, decision,
                         None, (), False)  # fmt: skip
    noise = sig.noise
    inf_noise = noise is not None and noise.value is not None and math.isinf(noise.value)
    if ceiling is None:
        raise _no_number_error(sig, inf_noise)
    if inf_noise:
        conf = _inf_confidence(noise.interval, ceiling)
        decision = (
            f"The memory ceiling {ceiling}: the gradient noise scale is beyond measurement, "
            "so a batch this large is still statistically efficient as far as can be told."
        )
    else:
        conf = "low"
        decision = (
            f"Only the memory ceiling is known: {ceiling} is the largest batch that fits, "
            "which says nothing about whether a batch that large still pays off "
            "statistically (pass a measured critical batch, a sweep or a noise scale for that)."
        )
    return Placement(ceiling, ceiling, 1, "memory", conf, decision, None, (), False)


def _no_number_error(sig: Signals, inf_noise: bool) -> ValueError:
    if inf_noise:
        return ValueError(
            "the gradient noise scale is beyond measurement (|G|^2 not significantly above "
            "zero), which says 'larger batches still pay off' but gives no number: pass the "
            "memory ceiling (memory=) to cap it, or measure over more steps"
        )
    given = [s.label for s in sig.all()]
    if sig.susceptibility is not None and sig.susceptibility.value is not None:
        return ValueError(
            "a susceptibility K_c alone cannot give a batch size: it is a correlation "
            "scale in logged steps, not examples. Also pass a memory ceiling, a measured "
            "critical batch (critical=), a batch-size sweep result or a noise scale"
        )
    if given:
        return ValueError(
            f"no usable batch size in what was given ({', '.join(given)}): a probe K_c is a "
            "knee at a fixed budget and never sets the batch. Pass memory= (the ceiling), "
            "critical= (measure_critical_batch) or sweep= (analyze_sweep)"
        )
    return ValueError(
        "nothing to recommend from: pass at least one of memory= (ceiling or "
        "find_batch_size result), critical= (measure_critical_batch result), sweep= "
        "(analyze_sweep result), noise_scale= (B_simple)"
    )


@dataclass(frozen=True)
class LrChoice:
    """The learning rate, the rule's name and fitted form, and whether B_simple set its B_noise."""

    lr: float | None
    rule_name: str | None
    rule: LrRule | None
    schedule: Any
    phrase: str
    notes: tuple[str, ...]
    from_b_simple: bool = False


def _measured_rule(critical: Any, kind: str) -> LrRule | None:
    lr_max = getattr(critical, "lr_max", None)
    b_noise = getattr(critical, "lr_B_noise", None)
    try:
        ok = math.isfinite(float(lr_max)) and float(lr_max) > 0 and float(b_noise) > 0
    except (TypeError, ValueError):
        return None
    if not (ok and math.isfinite(float(b_noise))):
        return None
    how = "fitted to the measurement's best lr per batch size"
    return LrRule(_RULE_FOR[kind], float(lr_max), float(b_noise), how)


def learning_rate(
    sig: Signals,
    target: Target | None,
    batch: int,
    *,
    reference_batch: Any,
    reference_lr: Any,
    lr_scaling: str | None,
    optimizer: str,
    reference_epochs: Any,
) -> LrChoice:
    """The learning rate at ``batch`` (see the module docstring)."""
    from wandb_batchsize.analysis.schedules import scale_schedule

    b_noise = target.phi if target is not None else None
    b_noise = b_noise if b_noise is not None and math.isfinite(b_noise) else None
    from_b_simple = b_noise is not None and target.decided_by in ("noise_scale", "sweep_knee")
    measured = None
    if sig.critical_result is not None and lr_scaling in (None, _RULE_FOR[optimizer]):
        measured = _measured_rule(sig.critical_result, optimizer)
    if measured is not None:
        schedule = None
        if reference_epochs is not None and reference_batch is not None:
            schedule = scale_schedule(reference_epochs, int(reference_batch), batch,
                                      keep="critical", critical_batch=b_noise or measured.B_noise,
                                      rule=measured)  # fmt: skip
        lr = float(measured.lr(batch))
        if sig.critical is not None:
            sig.critical.used_for += ("; " if sig.critical.used_for else "") + "learning rate"
        notes = ()
        if reference_lr is not None:
            notes = (
                f"reference_lr = {float(reference_lr):g} was not used: the measurement's best "
                "lrs give the learning rate.",
            )
        return LrChoice(lr, measured.rule, measured, schedule,
                        f", learning rate {lr:.3g} from {measured.describe()}", notes)  # fmt: skip
    if reference_lr is None or reference_batch is None:
        notes = ()
        if reference_lr is not None or reference_batch is not None:
            notes = ("Pass both reference_lr and reference_batch to get a scaled learning rate.",)
        return LrChoice(None, None, None, None, "", notes)
    rule = lr_scaling or (_RULE_FOR[optimizer] if b_noise else _UNLIMITED_FOR[optimizer])
    schedule = scale_schedule(
        reference_epochs if reference_epochs is not None else 1.0,
        int(reference_batch),
        int(batch),
        reference_lr=float(reference_lr),
        keep="critical" if b_noise is not None else "samples",
        critical_batch=b_noise,
        rule=rule,
        B_noise=b_noise if rule in LR_RULES else None,
    )
    lr = float(schedule.lr)
    notes: list[str] = []
    if rule in LR_RULES:
        phrase = (
            f", learning rate {lr:.3g} ({rule} rule through {float(reference_lr):g} at batch "
            f"{reference_batch}: {schedule.rule.describe()})"
        )
        if from_b_simple:
            notes.append(
                "The lr rule's B_noise is B_simple, which tends to be too small; above the "
                "reference batch that makes the learning rate err low."
            )
    else:
        phrase = (
            f", learning rate {lr:.3g} ({rule} scaling from {float(reference_lr):g} "
            f"at batch {reference_batch})"
        )
        if b_noise is not None:
            saturating = lr_rule_from_reference(
                float(reference_batch), float(reference_lr), b_noise, _RULE_FOR[optimizer]
            )
            notes.append(
                f"{rule.capitalize()} scaling was asked for although B_noise = {fmt(b_noise)} "
                f"is known; the {saturating.rule} rule would give {saturating.lr(batch):.3g}."
            )
        else:
            notes.append(
                f"{rule.capitalize()} scaling has no limit: past the critical batch the "
                "learning rate it gives is too large (it diverged in issue 11's test); measure "
                "the critical batch (measure_critical_batch) for a rule that saturates."
            )
    return LrChoice(lr, rule, schedule.rule, schedule if reference_epochs is not None else None,
                    phrase, tuple(notes), from_b_simple and rule in LR_RULES)  # fmt: skip

"""The decision: an ordered table of rules, the first that applies sets the target.

=====  =================================  ==========================  ================
order  rule                               target (examples)           confidence
=====  =================================  ==========================  ================
1      measured critical batch, knee      ``critical.B_crit``         from its interval
       bracketed (``critical=``)                                      (hi/lo <= 2 high,
                                                                      <= 4 medium)
2      a sweep's ``B_crit``               ``sweep.B_crit``            from its interval;
       (steps-to-target fit)                                          low outside the
                                                                      swept sizes
3      measured critical batch, knee      ``critical.B_crit``         low
       not bracketed                      (a lower bound)
4      a sweep's knee ``K_c`` (no fit)    the largest swept size      low
                                          below ``K_c`` still on the
                                          flat part (chi <= half its
                                          peak); also caps goodput
5      gradient noise scale alone         ``B_simple``                low, with its
                                                                      caveat
=====  =================================  ==========================  ================

Why in this order (``spec/critical-batch.md``): rules 1-3 measure the
McCandlish et al. (2018) trade-off ``S = S_min (1 + B_noise / B)`` itself. A
knee of a metric at a fixed budget (rule 4) moves with the budget, so the
batch is taken *below* it (where larger batches do not yet hurt), never at it.
``B_simple`` (rule 5) is a noise scale, not the critical batch: on the iterate
of an SGD run it is set by the run's own lr/B and was 4-45x below the
measured critical batch in issue 11's test. A susceptibility ``K_c`` (logged
steps) and a probe's ``K_c`` (a knee at a small fixed budget, 6-250x too
small there) never set the number. Every signal not deciding gets a sentence
saying what was done with it (:func:`annotate`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from .signals import Signal, Signals, fmt, fmt_interval

__all__ = ["CONFIDENCE", "TARGET_RULES", "Target", "annotate", "cap", "statistical_target"]

CONFIDENCE = ("low", "medium", "high")

#: the caveat every use of B_simple carries (issue 11)
B_SIMPLE_CAVEAT = (
    "a noise-scale estimate, not the critical batch: measured on the iterate of an SGD run "
    "it is set by the run's own lr/B, and it was 4-45x below the measured critical batch in "
    "our test (issue 11)"
)


def cap(conf: str, most: str) -> str:
    """The lower of two confidences."""
    return CONFIDENCE[min(CONFIDENCE.index(conf), CONFIDENCE.index(most))]


def ratio_confidence(interval: tuple[float, float] | None, *, high: float, medium: float) -> str:
    """Confidence from the width of an interval, as the ratio upper / lower."""
    if interval is None:
        return "medium"
    lo, hi = interval
    if not (math.isfinite(hi) and lo > 0):
        return "low"
    ratio = hi / lo
    return "high" if ratio <= high else "medium" if ratio <= medium else "low"


@dataclass(frozen=True)
class Target:
    """What a rule decided: a batch size in examples, before rounding and the ceiling.

    ``phi`` is the efficiency scale for goodput (a critical batch, else
    ``B_simple``); ``upper`` caps the batch (below a knee).
    """

    value: float
    decided_by: str
    confidence: str
    what: str
    phi: float | None
    upper: float | None = None


def _finite_noise(sig: Signals) -> float | None:
    n = sig.noise
    return n.value if n is not None and n.value is not None and math.isfinite(n.value) else None


def _critical_phrase(c: Signal) -> str:
    level = c.info.get("level")
    width = f"{level:.0%} interval" if level else "interval"
    band = f" ({width} {fmt_interval(c.interval)})" if c.interval else " (no interval)"
    return f"the measured critical batch size B_crit = {fmt(c.value)}{band}"


def _rule_critical_bracketed(sig: Signals) -> Target | None:
    c = sig.critical
    if c is None or c.value is None or not c.info["bracketed"]:
        return None
    conf = ratio_confidence(c.interval, high=2.0, medium=4.0)
    what = _critical_phrase(c) + ", the knee bracketed by the grid"
    return Target(c.value, "critical", conf, what, phi=c.value)


def _rule_sweep_b_crit(sig: Signals) -> Target | None:
    s = sig.sweep_b_crit
    if s is None:
        return None
    conf = ratio_confidence(s.interval, high=2.0, medium=4.0)
    what = f"the batch-size sweep's empirical critical batch size, sweep B_crit = {fmt(s.value)}"
    if s.interval:
        what += f" (interval {fmt_interval(s.interval)})"
    swept = s.info.get("swept")
    if swept and not (min(swept) <= s.value <= max(swept)):
        conf = "low"
        what += f", outside the swept sizes {fmt(min(swept))}-{fmt(max(swept))}: an extrapolation"
    return Target(s.value, "sweep", conf, what, phi=s.value)


def _rule_critical_lower_bound(sig: Signals) -> Target | None:
    c = sig.critical
    if c is None or c.value is None:
        return None
    measured = c.info.get("measured")
    if measured and c.value < measured[0]:
        what = (
            _critical_phrase(c) + f", an upper bound: below the smallest measured batch "
            f"{fmt(measured[0])}, every size was already past the knee (start the grid lower)"
        )
    else:
        what = (
            _critical_phrase(c) + ", a lower bound: the grid did not reach the knee (steps still "
            "fell in proportion at the largest batch; extend max_batch_size / batch_sizes)"
        )
    return Target(c.value, "critical", "low", what, phi=c.value)


def below_knee(knee: Signal) -> tuple[float, str]:
    """The batch to train with below a sweep knee, and how it was chosen.

    The largest swept size below ``K_c`` whose chi is at most half the peak
    chi (the flat part of the curve); without the swept sizes, ``K_c / 2``.
    """
    k_c = float(knee.value)
    swept, chi = knee.info.get("swept"), knee.info.get("chi")
    if not swept or not chi or len(swept) != len(chi):
        return k_c / 2, "one doubling below it (the swept sizes were not given)"
    peak = max(chi)
    if not peak > 0:
        return max(swept), "the largest swept size (the metric does not change across the sweep)"
    below = [(b, c) for b, c in zip(swept, chi, strict=True) if b < k_c]
    if not below:
        return min(swept), "the smallest swept size (the knee is at the small end)"
    flat = [b for b, c in below if c <= peak / 2]
    if flat:
        return max(
            flat
        ), "the largest swept size below it still on the flat part (chi <= half its peak)"
    return max(b for b, _ in below), "the largest swept size below it"


def _rule_sweep_knee(sig: Signals) -> Target | None:
    k = sig.sweep_knee
    if k is None:
        return None
    value, how = below_knee(k)
    what = (
        f"the sweep K_c = {fmt(k.value)}, where the sweep's metric changes fastest with log B "
        f"(larger batches cost most there at the sweep's budget): {how}, {fmt(value)}. A knee "
        "at a fixed budget moves with the budget, so this is not the critical batch"
    )
    return Target(value, "sweep_knee", "low", what, phi=_finite_noise(sig), upper=value)


def _rule_noise_scale(sig: Signals) -> Target | None:
    value = _finite_noise(sig)
    if value is None:
        return None
    n = sig.noise
    band = f" (band {fmt_interval(n.interval)})" if n.interval else ""
    what = (
        f"the gradient noise scale B_simple = {fmt(value)}{band}, {B_SIMPLE_CAVEAT}; used only "
        "because nothing measured the critical batch (measure_critical_batch or a "
        "steps-to-target sweep would), so the batch is likely too small"
    )
    return Target(value, "noise_scale", "low", what, phi=value)


#: the ordered table: (name, rule); the first rule returning a Target decides
TARGET_RULES: tuple[tuple[str, Callable[[Signals], Target | None]], ...] = (
    ("measured critical batch, knee bracketed", _rule_critical_bracketed),
    ("sweep B_crit", _rule_sweep_b_crit),
    ("measured critical batch, lower bound", _rule_critical_lower_bound),
    ("below the sweep knee", _rule_sweep_knee),
    ("gradient noise scale alone", _rule_noise_scale),
)

_DECIDER = {
    "critical": "critical",
    "sweep": "sweep_b_crit",
    "sweep_knee": "sweep_knee",
    "noise_scale": "noise",
}


def statistical_target(sig: Signals) -> Target | None:
    """The first rule of :data:`TARGET_RULES` that applies (None: no statistical signal)."""
    for _, rule in TARGET_RULES:
        target = rule(sig)
        if target is not None:
            getattr(sig, _DECIDER[target.decided_by]).used_for = "decided the target"
            return target
    return None


def _factor(a: float, b: float) -> float:
    return max(a / b, b / a)


def _note_critical(c: Signal, target: Target | None) -> None:
    if c.value is None:
        c.used_for = "ignored: no usable B_crit"
        c.note = (
            "The measured critical batch size has no usable B_crit (no batch size reached "
            "the target): ignored."
        )
    elif target is not None and target.decided_by == "sweep":
        rel = "above" if c.value > target.value else "at or below"
        upper = bool(c.info.get("measured")) and c.value < c.info["measured"][0]
        bound, sign = ("an upper", "<=") if upper else ("a lower", ">=")
        c.used_for = f"cross-check ({bound.split()[1]} bound)"
        c.note = (
            f"The measured critical batch size B_crit {sign} {fmt(c.value)} is {bound} bound "
            f"(knee not bracketed), {rel} the sweep B_crit; the sweep's fit decided."
        )


def _note_sweep_b_crit(s: Signal, target: Target) -> None:
    ratio = _factor(s.value, target.value)
    s.used_for = "cross-check"
    agree = (
        f"agrees within a factor {ratio:.1f}" if ratio <= 2 else f"differs by a factor {ratio:.1f}"
    )
    s.note = (
        f"The sweep B_crit = {fmt(s.value)} {agree} with the measured critical batch size, "
        "which was measured from the current weights and decided."
    )


def _note_knee(k: Signal, batch: int, target: Target | None) -> None:
    if k.info.get("metric_kind") in ("steps_to_target", "samples_to_target"):
        k.used_for = "context: where a steps-to-target curve falls fastest"
        k.note = (
            f"The sweep K_c = {fmt(k.value)} of a steps-to-target sweep is where the steps fall "
            "fastest per decade of B (the small end), not a batch to train at; the sweep's "
            "B_crit is its reading: reported, not used."
        )
        return
    k.used_for = "context: a knee at the sweep's budget, not the critical batch"
    side = (
        "is below it, where larger batches do not yet cost much"
        if batch < k.value
        else "is at or above it: at the sweep's budget, batches past the knee cost most in "
        "the metric, so expect a worse result at that budget"
    )
    k.note = (
        f"The sweep K_c = {fmt(k.value)} (where the sweep's metric changes fastest with log B) "
        f"is a knee at the sweep's budget, not the critical batch; the recommended batch "
        f"{batch} {side}."
    )


def _note_noise(n: Signal, target: Target | None, uses: tuple[str, ...]) -> None:
    if n.value is None:
        n.used_for = "ignored: not a positive number"
        n.note = "The gradient noise scale B_simple given is not a positive number: ignored."
        return
    if math.isinf(n.value):
        lo = fmt(n.interval[0]) if n.interval else "?"
        n.used_for = "context (lower bound only)"
        n.note = (
            "The gradient noise scale B_simple is too large to measure yet (|G|^2 not "
            f"significantly above zero; B_simple >= {lo}): larger batches still pay off "
            "statistically."
        )
        return
    if target is not None and target.decided_by in ("critical", "sweep"):
        ratio = _factor(target.value, n.value)
        n.used_for = "cross-check"
        n.note = f"The gradient noise scale B_simple = {fmt(n.value)} " + (
            f"agrees within a factor {ratio:.1f}."
            if ratio <= 3
            else f"differs by a factor {ratio:.1f} (expected: B_simple ignores the curvature "
            "that B_crit reflects, and on an SGD iterate it is set by the run's own lr/B); the "
            "measured B_crit is trusted."
        )
        return
    n.used_for = " and ".join(uses) if uses else "context"
    use = f"used only as {n.used_for}" if uses else "reported, not used"
    n.note = f"The gradient noise scale B_simple = {fmt(n.value)} is {B_SIMPLE_CAVEAT}: {use}."


def _note_susceptibility(s: Signal) -> None:
    s.used_for = "context only"
    if s.value is None:
        s.note = "The susceptibility result has no finite K_c: reported, not used."
        return
    detail = "significant" if s.info["is_significant"] else "not significant"
    if s.info["p_iid"] is not None:
        detail += f", p_iid = {s.info['p_iid']:.3g}"
    s.note = (
        f"The susceptibility K_c = {fmt(s.value)} logged steps ({detail}) is a correlation "
        "scale of the loss trajectory in logged steps, not examples, and not by itself a "
        "batch size: reported, not used to set the batch."
    )


def _note_probe(p: Signal) -> None:
    p.used_for = "context only"
    budget = p.info.get("budget")
    at = f" at its fixed '{budget}' budget" if budget else ""
    value = "none (fewer than four sizes succeeded)" if p.value is None else fmt(p.value)
    p.note = (
        f"The probe K_c = {value} (probe_batch_sizes{at}) is a knee that moves with the "
        "budget, not with the task (6-250x below the measured critical batch in issue 11's "
        "test): reported, not used to set the batch."
    )


def annotate(
    sig: Signals, target: Target | None, batch: int, noise_uses: tuple[str, ...], decided_by: str
) -> None:
    """Say, for every signal that did not decide, what was done with it.

    ``noise_uses``: what B_simple served as when it did not decide (goodput's
    efficiency scale, the lr rule's B_noise).
    """
    deciding = None if target is None else getattr(sig, _DECIDER[target.decided_by])
    if sig.ceiling is not None:
        sig.ceiling.used_for = (
            "decided (the ceiling alone)" if decided_by == "memory" else "cap on the micro-batch"
        ) + (" and the goodput candidates" if decided_by == "goodput" else "")
    if sig.critical is not None and sig.critical is not deciding:
        _note_critical(sig.critical, target)
    if sig.sweep_b_crit is not None and sig.sweep_b_crit is not deciding:
        _note_sweep_b_crit(sig.sweep_b_crit, target)
    if sig.sweep_knee is not None and sig.sweep_knee is not deciding:
        _note_knee(sig.sweep_knee, batch, target)
    if sig.noise is not None and sig.noise is not deciding:
        _note_noise(sig.noise, target, noise_uses)
    if sig.susceptibility is not None:
        _note_susceptibility(sig.susceptibility)
    if sig.probe is not None:
        _note_probe(sig.probe)

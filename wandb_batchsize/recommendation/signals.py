"""One reader per signal :func:`~wandb_batchsize.recommendation.recommend` can be given.

Each reader takes what the user passed (duck-typed: a result object, a monitor
with ``.result()``, or a plain number where that makes sense) and returns a
:class:`Signal` (None when the input was None), raising ``TypeError`` /
``ValueError`` with what to pass instead. A signal carries the name the reason
uses for it (``label``); the rules fill in ``used_for`` and ``note``, so the
reason can say what was done with every input.

=====================  ====================================================  ==============
key                    input                                                 units
=====================  ====================================================  ==============
``ceiling``            ``memory=``: ``find_batch_size`` result or an int     examples
``critical_B_crit``    ``critical=``: ``CriticalBatchResult``                examples
``B_crit``             ``sweep=``: ``SweepResult.B_crit`` (steps-to-target)  examples
``sweep_K_c``          ``sweep=``: ``SweepResult.K_c`` (the knee)            examples
``B_simple``           ``noise_scale=``: ``NoiseScaleResult`` or a number    examples
``susceptibility_K_c`` ``susceptibility=``: ``SusceptibilityResult``         logged steps
``probe_K_c``          ``probe=``: ``ProbeResult`` (``probe_batch_sizes``)   examples
=====================  ====================================================  ==============
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "Signal",
    "Signals",
    "fmt",
    "fmt_interval",
    "read_critical",
    "read_memory",
    "read_noise_scale",
    "read_probe",
    "read_signals",
    "read_susceptibility",
    "read_sweep",
]


@dataclass
class Signal:
    """One input as the rules see it (mutable: the rules record what they did with it)."""

    key: str
    label: str
    value: float | None
    interval: tuple[float, float] | None = None
    info: dict[str, Any] = field(default_factory=dict)
    used_for: str = ""
    note: str = ""

    def record(self) -> dict[str, Any]:
        """The ``Recommendation.signals`` entry."""
        out: dict[str, Any] = {"value": self.value}
        if self.interval is not None:
            out["interval"] = self.interval
        out.update(self.info)
        out["used_for"] = self.used_for
        return out


@dataclass
class Signals:
    """Everything :func:`read_signals` found, in the order the reason lists them."""

    ceiling: Signal | None = None
    critical: Signal | None = None
    sweep_b_crit: Signal | None = None
    sweep_knee: Signal | None = None
    noise: Signal | None = None
    susceptibility: Signal | None = None
    probe: Signal | None = None
    probes: tuple[Any, ...] = ()
    multiple_of: int | None = None
    critical_result: Any = None

    def all(self) -> list[Signal]:
        return [
            s
            for s in (
                self.ceiling,
                self.critical,
                self.sweep_b_crit,
                self.sweep_knee,
                self.noise,
                self.susceptibility,
                self.probe,
            )
            if s is not None
        ]


# -- formatting ------------------------------------------------------------------------


def fmt(x: float | None) -> str:
    if x is None:
        return "?"
    if not math.isfinite(x):
        return "inf"
    return f"{x:.0f}" if abs(x) >= 10 else f"{x:.3g}"


def fmt_interval(interval: tuple[float, float] | None) -> str:
    if interval is None:
        return ""
    lo, hi = interval
    return f"{fmt(lo)}-{fmt(hi)}" if math.isfinite(hi) else f">= {fmt(lo)}"


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


# -- the readers ------------------------------------------------------------------------


def read_memory(memory: Any) -> tuple[Signal | None, tuple[Any, ...], int | None]:
    """``(signal, timed probes, multiple_of)`` from a memory search result or an int."""
    if memory is None:
        return None, (), None
    if isinstance(memory, int | float) and not isinstance(memory, bool):
        ceiling = int(memory)
        if ceiling < 1:
            raise ValueError(f"memory ceiling must be a positive batch size, got {memory!r}")
        return Signal("ceiling", "memory ceiling", ceiling, info={"source": "given"}), (), None
    ceiling = getattr(memory, "batch_size", None)
    if ceiling is None:
        raise TypeError(
            "memory must be a batch-size ceiling (int) or a memory search result with "
            f".batch_size and .probes (find_batch_size(...)), got {type(memory).__name__}"
        )
    info = {"max_fitting": getattr(memory, "max_fitting", None), "source": "memory search"}
    probes = tuple(getattr(memory, "probes", ()) or ())
    signal = Signal("ceiling", "memory ceiling", int(ceiling), info=info)
    return signal, probes, getattr(memory, "multiple_of", None)


def read_critical(critical: Any) -> Signal | None:
    """A measured ``CriticalBatchResult``: ``B_crit``, its interval, ``bracketed``."""
    if critical is None:
        return None
    if not hasattr(critical, "B_crit") or not hasattr(critical, "bracketed"):
        raise TypeError(
            "critical must be a CriticalBatchResult (measure_critical_batch(...)), "
            f"got {type(critical).__name__}"
        )
    value = _finite(critical.B_crit)
    value = value if value is not None and value > 0 else None
    measured = sorted(float(b) for b in (getattr(critical, "steps", None) or {}))
    info = {
        "bracketed": bool(critical.bracketed),
        "measured": measured,
        "level": _finite(getattr(critical, "level", None)),
        "optimizer_kind": getattr(critical, "optimizer_kind", None),
        "warnings": tuple(getattr(critical, "warnings", ()) or ()),
    }
    interval = _interval(getattr(critical, "interval", None))
    return Signal("critical_B_crit", "measured critical batch size", value, interval, info)


def read_sweep(sweep: Any) -> tuple[Signal | None, Signal | None]:
    """``(B_crit signal, K_c signal)`` of a ``SweepResult`` (either may be None)."""
    if sweep is None:
        return None, None
    if not hasattr(sweep, "K_c") and not hasattr(sweep, "B_crit"):
        raise TypeError(
            "sweep must be a SweepResult (analyze_sweep(...)) with .K_c and .B_crit, "
            f"got {type(sweep).__name__}"
        )
    sizes = getattr(sweep, "batch_sizes", None)
    sizes = None if sizes is None else [float(b) for b in sizes]
    b_crit = _finite(getattr(sweep, "B_crit", None))
    crit = None
    if b_crit is not None and b_crit > 0:
        interval = _interval(getattr(sweep, "B_crit_interval", None))
        crit = Signal("B_crit", "sweep B_crit", b_crit, interval, {"swept": sizes})
    knee = None
    k_c = _finite(getattr(sweep, "K_c", None))
    if k_c is not None:
        chi = getattr(sweep, "chi_values", None)
        diag = getattr(sweep, "diagnostics", None) or {}
        info = {
            "swept": sizes,
            "chi": None if chi is None else [float(c) for c in chi],
            "metric_kind": diag.get("metric_kind") if isinstance(diag, dict) else None,
            "units": "examples",
        }
        knee = Signal("sweep_K_c", "sweep K_c", k_c, _interval(sweep.K_c_interval)
                      if hasattr(sweep, "K_c_interval") else None, info)  # fmt: skip
    return crit, knee


def read_noise_scale(noise_scale: Any) -> Signal | None:
    """``B_simple`` (examples) with its band; ``inf`` when ``|G|^2`` is not measurably > 0."""
    if noise_scale is None:
        return None
    if isinstance(noise_scale, int | float) and not isinstance(noise_scale, bool):
        value, interval = _finite(noise_scale), None
    else:
        if not hasattr(noise_scale, "B_simple") and hasattr(noise_scale, "result"):
            noise_scale = noise_scale.result()  # a monitor or a streaming estimator
        raw = getattr(noise_scale, "B_simple", None)
        if raw is None:
            raise TypeError(
                "noise_scale must be a number or a NoiseScaleResult (with .B_simple), "
                f"got {type(noise_scale).__name__}"
            )
        raw = float(raw)
        interval = _interval(getattr(noise_scale, "B_simple_interval", None))
        value = math.inf if math.isinf(raw) and raw > 0 else _finite(raw)
    if value is not None and value <= 0:
        value = None  # not a usable noise scale: reported as such
    return Signal("B_simple", "gradient noise scale B_simple", value, interval)


def read_susceptibility(susceptibility: Any) -> Signal | None:
    """``K_c`` of a loss series: a correlation scale in logged steps."""
    if susceptibility is None:
        return None
    if not hasattr(susceptibility, "K_c") and hasattr(susceptibility, "result"):
        susceptibility = susceptibility.result()
    k_c = _finite(getattr(susceptibility, "K_c", None))
    info = {
        "is_significant": bool(getattr(susceptibility, "is_significant", False)),
        "p_iid": _finite(getattr(susceptibility, "p_iid", None)),
        "kappa": _finite(getattr(susceptibility, "kappa", None)),
        "units": "logged steps",
    }
    return Signal("susceptibility_K_c", "susceptibility K_c", k_c, info=info)


def read_probe(probe: Any) -> Signal | None:
    """``K_c`` of ``probe_batch_sizes``: the knee of a metric at a fixed (small) budget."""
    if probe is None:
        return None
    if not hasattr(probe, "K_c"):
        raise TypeError(
            f"probe must be a ProbeResult (probe_batch_sizes(...)), got {type(probe).__name__}"
        )
    info = {"budget": getattr(probe, "budget", None), "units": "examples"}
    return Signal("probe_K_c", "probe K_c", _finite(probe.K_c), info=info)


def read_signals(
    memory: Any = None,
    critical: Any = None,
    sweep: Any = None,
    noise_scale: Any = None,
    susceptibility: Any = None,
    probe: Any = None,
) -> Signals:
    """Every reader on its input."""
    ceiling, probes, multiple_of = read_memory(memory)
    sweep_b_crit, sweep_knee = read_sweep(sweep)
    return Signals(
        ceiling=ceiling,
        critical=read_critical(critical),
        sweep_b_crit=sweep_b_crit,
        sweep_knee=sweep_knee,
        noise=read_noise_scale(noise_scale),
        susceptibility=read_susceptibility(susceptibility),
        probe=read_probe(probe),
        probes=probes,
        multiple_of=multiple_of,
        critical_result=critical,
    )

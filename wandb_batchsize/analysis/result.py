"""The result of a susceptibility analysis, and its strict-JSON form."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np

__all__ = ["SusceptibilityResult", "to_json_value"]


def to_json_value(value: Any) -> Any:
    """Recursively turn numpy values into JSON ones; NaN and +-inf become None."""
    if isinstance(value, dict):
        return {str(k): to_json_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_json_value(v) for v in value]
    if isinstance(value, np.ndarray):
        return [to_json_value(v) for v in value.tolist()]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        v = float(value)
        return v if math.isfinite(v) else None
    return value


def _float(v: Any) -> float:
    return float("nan") if v is None else float(v)


@dataclass(frozen=True)
class SusceptibilityResult:
    """Batch-size susceptibility of a 1-D series (spec/susceptibility.md).

    Published fields (same definitions as ``batch-susceptibility`` 1.0.1):
    ``K_values`` (block sizes), ``V_values`` (variance of block means),
    ``chi_values`` (``|d log10 V / d log10 K|``), ``K_c`` (K at the chi peak),
    ``kappa`` (peak / median chi), ``alpha`` (log-log slope of V on K).

    Honest statistics: ``alpha_se`` (sandwich standard error that accounts for
    the correlation between scales), ``p_iid`` (calibrated test of "the series is
    i.i.d."), ``is_significant`` (``p_iid < 0.05`` and kappa above the 95th
    percentile of its null distribution), ``regime`` (``"degenerate"`` for a
    constant or nearly constant series, whose K_c is only the grid midpoint),
    ``tau_int`` (integrated autocorrelation time, in steps), ``ess = n / tau_int``, ``K_corr`` (the scale
    at which ``K V(K)`` reaches 90 % of its plateau). ``n`` is the number of values
    analysed (after dropping non-finite ones and detrending). ``diagnostics`` says
    how each statistic was obtained (``null_method``, ``p_iid_ttest``,
    ``alpha_se_ols``, ``kappa_null_q95``, ``tau_int_converged``, ``warnings``, ...).

    Units: K_c and K_corr are in the steps of the series (logged steps when the
    series is a training loss), not in samples. A correlation time of the
    optimiser's trajectory is not by itself a batch size: it tells over how many
    consecutive steps the loss fluctuations are correlated.
    """

    K_c: float
    kappa: float
    alpha: float
    alpha_se: float
    p_iid: float
    K_values: np.ndarray
    V_values: np.ndarray
    chi_values: np.ndarray
    is_significant: bool
    regime: str
    tau_int: float
    ess: float
    K_corr: float
    n: int
    diagnostics: dict = field(default_factory=dict)

    def summary(self) -> str:
        """Human-readable multi-line summary."""
        null = self.diagnostics.get("null_method", "?")
        k_c = f"{self.K_c:.0f}"
        if self.regime == "degenerate":
            k_c += "  (grid midpoint, not a finding: the series is constant or nearly so)"
        lines = [
            f"Batch-size susceptibility (n={self.n}, {len(self.K_values)} scales, "
            f"detrend={self.diagnostics.get('detrend', 'none')})",
            f"  K_c         = {k_c}",
            f"  kappa       = {self.kappa:.2f}",
            f"  alpha       = {self.alpha:.3f} ± {self.alpha_se:.3f}",
            f"  p_iid       = {self.p_iid:.4f}  ({null} null)",
            f"  regime      = {self.regime}",
            f"  significant = {self.is_significant}",
            f"  tau_int     = {self.tau_int:.2f}  ess = {self.ess:.0f}  K_corr = {self.K_corr:.0f}",
        ]
        for w in self.diagnostics.get("warnings", []):
            lines.append(f"  warning: {w}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()

    def to_dict(self) -> dict:
        """Strict-JSON dict (``json.dumps(d, allow_nan=False)`` works)."""
        return {f.name: to_json_value(getattr(self, f.name)) for f in fields(self)}

    @classmethod
    def from_dict(cls, d: dict) -> SusceptibilityResult:
        """Inverse of :meth:`to_dict` (None becomes NaN in numeric fields)."""

        def arr(key: str) -> np.ndarray:
            return np.array([_float(v) for v in d.get(key) or []], dtype=np.float64)

        return cls(
            K_c=_float(d["K_c"]),
            kappa=_float(d["kappa"]),
            alpha=_float(d["alpha"]),
            alpha_se=_float(d["alpha_se"]),
            p_iid=_float(d["p_iid"]),
            K_values=np.array(d.get("K_values") or [], dtype=np.int64),
            V_values=arr("V_values"),
            chi_values=arr("chi_values"),
            is_significant=bool(d["is_significant"]),
            regime=str(d["regime"]),
            tau_int=_float(d["tau_int"]),
            ess=_float(d["ess"]),
            K_corr=_float(d["K_corr"]),
            n=int(d["n"]),
            diagnostics=dict(d.get("diagnostics") or {}),
        )

"""The :class:`Recommendation`: a batch size, how to reach it, its learning rate and why."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from wandb_batchsize.analysis.goodput import GoodputChoice
from wandb_batchsize.tracking import keys

__all__ = ["Recommendation"]


@dataclass(frozen=True)
class Recommendation:
    """A batch size with the learning rate and accumulation that go with it.

    Attributes:
        batch_size: effective examples per optimizer step (``micro_batch_size *
            accumulation_steps``).
        micro_batch_size: examples per forward/backward, at most ``ceiling``.
        accumulation_steps: micro-batches per optimizer step.
        learning_rate: from the measured lr rule, or scaled from
            ``reference_lr`` (None without either).
        decided_by: ``"critical"`` (a measured ``CriticalBatchResult``),
            ``"sweep"`` (a sweep's B_crit), ``"sweep_knee"`` (below a sweep's
            K_c), ``"noise_scale"`` (B_simple), ``"goodput"`` or ``"memory"``.
        confidence: ``"high"``, ``"medium"`` or ``"low"``.
        reason: the plain-language explanation.
        target: the statistical target in examples before rounding and capping
            (None when no statistical signal was given).
        ceiling: the memory ceiling used (None when unknown).
        lr_scaling: the learning-rate rule used: ``"saturating"`` (SGD),
            ``"surge"`` (Adam), ``"linear"`` or ``"sqrt"`` (None without an lr).
        signals: every input seen and how it was used.
        goodput: the goodput table, when step times were available.
        schedule: the :class:`~wandb_batchsize.analysis.schedules.Schedule`
            from ``scale_schedule`` (epochs, lr, steps factor), when computed.
        lr_rule: the fitted saturating rule
            (:class:`~wandb_batchsize.analysis.lr_rules.LrRule`), when one was used.
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
    lr_rule: Any = field(default=None, compare=False)

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

"""A whole probe run: sizes, plan, progress, the probes in a snapshot, the result.

:func:`run_session` is the body every framework's probe shares: it resolves the
sizes against the data and the memory ceiling, plans the budget, prints the
header, probes inside the backend's context (the starting state restored
bitwise afterwards, also on errors and KeyboardInterrupt) and builds, warns
about and logs the result. :func:`probe_with_backend` runs it over a framework
backend of :mod:`wandb_batchsize.backends` (PyTorch, Keras); the Lightning probe
brings its own ``ProbeBackend`` (a ``Trainer`` per size).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from wandb_batchsize.backends.base import Backend
from wandb_batchsize.probe.driver import ProbeBackend, build_result, choose_metric, run_probes
from wandb_batchsize.probe.progress import Progress
from wandb_batchsize.probe.result import ProbeResult
from wandb_batchsize.probe.sizes import plan_budget, resolve_batch_sizes
from wandb_batchsize.probe.trainer import BackendProbe


@dataclass(frozen=True)
class ProbeOptions:
    """The options every ``probe_batch_sizes`` shares (see its docstring)."""

    batch_sizes: Sequence[int] | None = None
    budget: str = "samples"
    samples_per_size: int | None = None
    steps_per_size: int = 50
    lr_scaling: str | None = None
    base_batch_size: int | None = None
    repeats: int = 1
    seed: int = 0
    max_batch: int | None = None
    metric: str = "auto"
    n_bootstrap: int = 1000
    verbose: bool = True
    log_to_wandb: bool = True

    @classmethod
    def pick(cls, arguments: Mapping[str, Any]) -> ProbeOptions:
        """The options among a caller's ``locals()``."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in arguments.items() if k in names})


def run_session(
    probe: Any,
    options: ProbeOptions,
    *,
    n_samples: int | None,
    has_val: bool,
    framework: str,
) -> ProbeResult:
    """Probe with ``probe`` (a ``ProbeBackend`` that is also a context manager)."""
    sizes, left_out = resolve_batch_sizes(
        options.batch_sizes, n_samples=n_samples, max_batch=options.max_batch
    )
    plan = plan_budget(
        sizes,
        budget=options.budget,
        samples_per_size=options.samples_per_size,
        steps_per_size=options.steps_per_size,
    )
    chosen = choose_metric(options.metric, has_val)
    progress = Progress(enabled=options.verbose, label=chosen)
    progress.header(plan, options.repeats, chosen, framework)
    with probe:
        records = run_probes(
            probe,
            plan,
            repeats=options.repeats,
            seed=options.seed,
            lr_scaling=options.lr_scaling,
            base_batch_size=options.base_batch_size,
            use_val=chosen == "val_loss",
            progress=progress,
        )
    return build_result(
        records,
        plan,
        metric=chosen,
        framework=framework,
        left_out=left_out,
        n_bootstrap=options.n_bootstrap,
        seed=options.seed,
        log_to_wandb=options.log_to_wandb,
    )


def probe_with_backend(
    backend: Backend, data: Any, options: ProbeOptions, *, val_data: Any = None
) -> ProbeResult:
    """Probe ``backend``'s model at each size on ``data``; see ``probe_batch_sizes``."""
    probe: ProbeBackend = BackendProbe(backend, data, val_data)
    return run_session(
        probe,
        options,
        n_samples=backend.data_len(data),
        has_val=val_data is not None,
        framework=backend.framework,
    )

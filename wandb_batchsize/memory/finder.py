"""``find_batch_size``: the largest batch a real training step fits, for PyTorch and Keras.

It takes the model's backend (:mod:`wandb_batchsize.backends`: PyTorch or
Keras), probes with it (:class:`~wandb_batchsize.memory.probe.MemoryProbe`: one
real forward, loss, backward and optimizer step per probe), runs the
framework-free strategy of :mod:`wandb_batchsize.memory.search` inside a
snapshot of the training state
(restored bitwise afterwards, also on errors and KeyboardInterrupt), applies
the safety factor and the alignment, and records the answer on W&B: on the
active run, or on the next run the process starts (``tracking/pending.py``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from wandb_batchsize.backends.base import restoring
from wandb_batchsize.backends.host_memory import parse_bytes
from wandb_batchsize.memory import distributed
from wandb_batchsize.memory.probe import MemoryProbe
from wandb_batchsize.memory.progress import ProgressTable
from wandb_batchsize.memory.search import (
    AffineFit,
    CeilingSearch,
    Probe,
    ProbeOutcome,
    apply_safety,
    run_search,
)


class NoBatchSizeFitsError(RuntimeError):
    """Even ``min_batch_size`` does not fit in memory."""


@dataclass(frozen=True)
class MemorySearchResult:
    """What :func:`find_batch_size` found.

    ``batch_size`` is the size to train with (``max_fitting`` times the safety
    factor, rounded down to ``multiple_of``); ``max_fitting`` the largest size
    whose training step fitted; ``first_failing`` the smallest that did not
    (None when ``max_batch_size`` fitted); ``probes`` every probe in order.
    ``config`` is what goes into ``wandb.config``; :meth:`summary` what goes
    into the run summary. ``int(result)`` is ``result.batch_size``.
    """

    batch_size: int
    max_fitting: int
    first_failing: int | None
    probes: tuple[Probe, ...]
    model_params: int
    model_memory_mb: float
    device: str
    config: dict[str, Any]
    framework: str = ""
    safety_factor: float = 0.9
    multiple_of: int = 8
    predicted: int | None = None
    fit: AffineFit | None = None
    seconds: float = 0.0
    stopped: str = ""
    world_size: int = 1

    @property
    def oom_events(self) -> int:
        """Probes that did not fit (out of memory, or over ``target_memory``)."""
        return sum(1 for p in self.probes if not p.fitted)

    def summary(self) -> dict[str, Any]:
        """The ``batch_finder/*`` scalars for the W&B run summary (the probe table apart)."""
        from wandb_batchsize.tracking import keys

        return {
            keys.BATCH_FINDER_MODEL_PARAMS: self.model_params,
            keys.BATCH_FINDER_MODEL_MEMORY_MB: round(self.model_memory_mb, 3),
            keys.BATCH_FINDER_OPTIMAL: self.batch_size,
            keys.BATCH_FINDER_MAX_FITTING: self.max_fitting,
        }

    def probe_rows(self) -> tuple[list[str], list[list[Any]]]:
        """Columns and rows of the ``batch_finder/probes`` table."""
        columns = ["batch_size", "fitted", "peak_bytes", "seconds", "phase", "error"]
        rows = [
            [p.batch_size, p.fitted, p.peak_bytes, round(p.seconds, 4), p.phase, p.error or ""]
            for p in self.probes
        ]
        return columns, rows

    def __int__(self) -> int:
        return self.batch_size

    def __index__(self) -> int:
        return self.batch_size


def _search_backend(model: Any, **options: Any) -> Any:
    from wandb_batchsize.backends import backend_for

    try:
        return backend_for(model, stand_in_loss=True, **options)
    except TypeError as exc:
        if "expected a torch.nn.Module or a Keras model" not in str(exc):
            raise
        raise TypeError(
            f"find_batch_size needs a torch.nn.Module or a Keras model, got {type(model).__name__}"
        ) from None


def _optimizers(optimizer: Any) -> list[Any]:
    """The optimizers to snapshot: a list/tuple of them (a ``step_fn`` with several) or one."""
    if isinstance(optimizer, (list, tuple)):
        return [o for o in optimizer if o is not None]
    return [] if optimizer is None else [optimizer]


def find_batch_size(
    model: Any,
    sample: Any = None,
    *,
    input_shape: tuple[int, ...] | None = None,
    sample_fn: Callable[[int], Any] | None = None,
    optimizer: Any = None,
    loss_fn: Any = None,
    step_fn: Callable[[Any, Any, Any], Any] | None = None,
    precision: str | None = None,
    min_batch_size: int = 2,
    max_batch_size: int = 4096,
    safety_factor: float = 0.9,
    multiple_of: int = 8,
    target_memory: int | str | None = None,
    verbose: bool = True,
    log_to_wandb: bool = True,
    tolerance: float = 0.02,
    steps_per_probe: int = 1,
    eval_step: bool = False,
    max_probes: int = 40,
) -> MemorySearchResult:
    """Find the largest batch size whose real training step fits in memory.

    Args:
        model: a ``torch.nn.Module`` (DDP-wrapped is fine) or a Keras 3 model.
        sample: a batch to repeat up to each probed size — a tensor, an
            ``(inputs, targets)`` pair, or a dict of tensors; use your worst case
            (longest sequences). Or ``input_shape`` (per-sample, random inputs)
            or ``sample_fn(batch_size) -> batch``: exactly one of the three.
        optimizer: the optimizer training will use (its state is restored
            afterwards); default a temporary Adam. A compiled Keras model uses
            its own.
        loss_fn: ``loss_fn(output, target)`` for an ``(inputs, targets)`` batch,
            else ``loss_fn(output)``; default: the model's ``.loss``, or
            cross-entropy / MSE chosen from the target (PyTorch), the compiled
            loss or MSE (Keras).
        step_fn: ``step_fn(model, batch, optimizer) -> loss``, your whole training
            step (custom or several losses, your own ``GradScaler``, gradient
            checkpointing, several optimizers: pass the one to restore as
            ``optimizer``, or a list of them); each probe runs it instead of the
            default forward / loss / backward / step. ``model`` is the module
            itself (DDP unwrapped), ``batch`` what ``sample``/``sample_fn``
            makes. PyTorch only (Keras: a clear ``NotImplementedError``;
            override ``Model.train_step`` instead).
        precision: ``None``, ``"bf16"`` or ``"fp16"``: the default step runs under
            ``torch.autocast`` of that dtype (fp16 with a ``GradScaler``), on
            CPU and GPU alike, so the ceiling is the one of the precision the
            run uses. PyTorch only (Keras: set a mixed-precision policy before
            building the model; passing ``precision`` raises
            ``NotImplementedError``).
        min_batch_size, max_batch_size: the range searched.
        safety_factor: the trained size is ``max_fitting * safety_factor``
            (memory freed by the allocator is not always reusable later; longer
            evaluation batches). Not applied when ``max_batch_size`` fits.
        multiple_of: round the trained size down to a multiple of this (8 suits
            tensor cores; 1 disables). The seed's example, 768 x 0.9 = 691, was
            not the multiple of 32 it claimed: the alignment is explicit here.
        target_memory: cap the budget — bytes or a size like ``"24GiB"`` — to
            find the size for a smaller device than this one (CUDA/XPU: the
            allocator's per-process fraction; elsewhere a probe whose peak
            reading exceeds it counts as not fitting).
        verbose: print the progress table.
        log_to_wandb: record ``batch_size``/``batch_size_source`` in the config
            and ``batch_finder/*`` in the summary of the active W&B run — or, with
            no active run, of the next run this process starts. Inside a sweep a
            ``batch_size`` set by the sweep is kept. Only rank 0 logs.
        tolerance: stop when the largest fitting size is provably within this
            fraction of the true maximum (0 bisects to the exact boundary).
        steps_per_probe: training steps per probe (1 is enough for the peak).
        eval_step: also run an evaluation forward pass in each probe.
        max_probes: stop after this many probes.

    Returns:
        :class:`MemorySearchResult`. Raises :class:`NoBatchSizeFitsError` when
        even ``min_batch_size`` runs out of memory. Any error that is not an
        out-of-memory error propagates unchanged, after the state is restored.

    Notes:
        - The snapshot of the training state lives in host memory. On a GPU it
          costs no device memory; on the CPU it shares the memory being probed,
          so ``max_fitting`` is lower by about (weights + optimizer state) /
          (memory per sample) — negligible unless the weights are a sizeable
          part of the budget.
        - Under ``torch.distributed`` every rank must call this with the same
          arguments; the ranks agree after each probe (see
          :mod:`wandb_batchsize.memory.distributed`).
        - On the CPU, a process capped with ``RLIMIT_AS`` can lose capacity to
          address space the allocators keep (glibc's dynamic mmap threshold,
          oneDNN's primitive cache): the ceiling then depends on what ran
          before. Keep the safety factor. TensorFlow's oneDNN kernels abort
          instead of raising at the cap: set ``TF_ENABLE_ONEDNN_OPTS=0`` there.
    """
    if not 0 < safety_factor <= 1:
        raise ValueError(f"safety_factor must be in (0, 1], got {safety_factor!r}")
    if int(multiple_of) != multiple_of or multiple_of < 1:
        raise ValueError(f"multiple_of must be a positive integer, got {multiple_of!r}")
    target_bytes = parse_bytes(target_memory)
    strategy = CeilingSearch(
        min_batch_size, max_batch_size, tolerance=tolerance, max_probes=max_probes
    )
    input_shape = tuple(input_shape) if input_shape is not None else None
    backend = _search_backend(
        model, loss_fn=loss_fn, input_shape=input_shape, step_fn=step_fn, precision=precision
    )
    make_batch = backend.batch_maker(sample=sample, input_shape=input_shape, sample_fn=sample_fn)
    world = distributed.world_size()
    is_main = distributed.rank() == 0
    table = ProgressTable(verbose=verbose and is_main)
    meter = backend.meter(target_bytes)
    budget = getattr(meter, "budget_now", lambda: None)()
    model_memory_mb = backend.model_memory_bytes / 2**20
    table.header(
        framework=backend.framework,
        device=backend.device_name,
        model_params=backend.model_params,
        model_memory_mb=model_memory_mb,
        budget_bytes=budget,
        min_batch_size=min_batch_size,
        max_batch_size=max_batch_size,
        world_size=world,
    )

    start = time.perf_counter()
    step_optimizer, owned = backend.search_optimizer(optimizer)
    probe = MemoryProbe(
        backend, make_batch, step_optimizer, meter=meter, steps=steps_per_probe, eval_step=eval_step
    )

    def agreed_probe(batch_size: int) -> ProbeOutcome:
        return distributed.agree(probe(batch_size))

    snapshot = backend.snapshot([] if owned else _optimizers(step_optimizer))
    try:
        with restoring(snapshot, release=backend.release), backend.memory_cap(target_bytes):
            outcome = run_search(agreed_probe, strategy, on_probe=table.row)
    finally:
        backend.forget_steps()
    seconds = time.perf_counter() - start

    if outcome.max_fitting is None:
        last = outcome.probes[-1] if outcome.probes else None
        why = f" ({last.error})" if last is not None and last.error else ""
        raise NoBatchSizeFitsError(
            f"min_batch_size={min_batch_size} does not fit in memory{why}. Use a smaller "
            "model or input, mixed precision, or a smaller min_batch_size with gradient "
            "accumulation (wandb_batchsize.accumulation_for)."
        )
    batch_size = apply_safety(
        outcome.max_fitting,
        safety_factor=safety_factor,
        multiple_of=int(multiple_of),
        min_batch_size=min_batch_size,
        ceiling_found=outcome.first_failing is not None,
    )
    result = MemorySearchResult(
        batch_size=batch_size,
        max_fitting=outcome.max_fitting,
        first_failing=outcome.first_failing,
        probes=outcome.probes,
        model_params=backend.model_params,
        model_memory_mb=model_memory_mb,
        device=backend.device_name,
        config={"batch_size": batch_size, "batch_size_source": "dynamic_finder"},
        framework=backend.framework,
        safety_factor=safety_factor,
        multiple_of=int(multiple_of),
        predicted=outcome.predicted,
        fit=outcome.fit,
        seconds=seconds,
        stopped=outcome.stopped,
        world_size=world,
    )
    table.footer(result)
    if log_to_wandb and is_main:
        from wandb_batchsize.tracking.finder_log import log_result

        log_result(result, verbose=verbose)
    return result

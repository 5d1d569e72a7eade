"""``find_batch_size``: the largest batch a real training step fits, for PyTorch and Keras.

It takes the model's backend (:mod:`wandb_batchsize.backends`: PyTorch or
Keras), probes with it (:class:`~wandb_batchsize.memory.probe.MemoryProbe`: one
real forward, loss, backward and optimizer step per probe), runs the
framework-free strategy of :mod:`wandb_batchsize.memory.search` inside a
snapshot of the training state (restored bitwise afterwards, also on errors
and Ctrl-C: :mod:`.guard`), applies the safety factor and the alignment,
releases what the probes left and *confirms* the size with full training steps
(:mod:`.confirm`), optionally finds the evaluation ceiling, and records the
answer on W&B: on the active run, or on the next run the process starts
(``tracking/pending.py``). The phases are :class:`.session.SearchSession`.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import Any

from wandb_batchsize.backends.host_memory import parse_bytes
from wandb_batchsize.memory import distributed
from wandb_batchsize.memory.confirm import Confirmation
from wandb_batchsize.memory.guard import InterruptGuard
from wandb_batchsize.memory.progress import ProgressTable
from wandb_batchsize.memory.result import MemorySearchResult, NoBatchSizeFitsError
from wandb_batchsize.memory.search import CeilingSearch, SearchOutcome, apply_safety
from wandb_batchsize.memory.session import SearchSession
from wandb_batchsize.memory.worst_case import (
    check_max_length,
    length_sample_fn,
    lengthen_sample,
)

__all__ = ["MemorySearchResult", "NoBatchSizeFitsError", "find_batch_size"]


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
    sample_fn: Callable[..., Any] | None = None,
    max_length: int | None = None,
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
    confirm_steps: int = 3,
    find_eval_batch_size: bool = False,
) -> MemorySearchResult:
    """Find the largest batch size whose real training step fits in memory.

    Args:
        model: a ``torch.nn.Module`` (DDP-wrapped is fine) or a Keras 3 model.
        sample: a batch to repeat up to each probed size — a tensor, an
            ``(inputs, targets)`` pair, or a dict of tensors; use your worst case
            (longest sequences). Or ``input_shape`` (per-sample, random inputs)
            or ``sample_fn(batch_size) -> batch``: exactly one of the three.
        max_length: the longest sequence training will see, for token models:
            ``sample_fn(batch_size, length)`` is called with it, and a shorter
            ``sample`` is lengthened to it (tokens repeated along dimension 1),
            so the probes run the worst case, not the first batch
            (:mod:`wandb_batchsize.memory.worst_case`).
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
            (memory freed by the allocator is not always reusable later). Not
            applied when ``max_batch_size`` fits (no memory limit was reached).
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
        confirm_steps: after the search, memory is released (gc, the device
            caches, glibc's ``malloc_trim``) and ``confirm_steps`` full training
            steps run at the returned size with your optimizer, from the
            restored state (restored again afterwards); when they do not fit
            the size steps down — by ``tolerance``, then halving the gap to
            ``min_batch_size`` — until they do (``result.confirmed``,
            ``result.step_downs``). 0 skips it (``confirmed=False``).
        find_eval_batch_size: also find the largest *evaluation* batch (a
            no-grad forward pass in eval mode, up to ``max_batch_size``),
            safety factor and confirmation applied: ``result.eval_batch_size``.
            Off by default: it costs a second, shorter search (about 3-8 more
            probes, one or two more OOM events) that most runs do not need.

    Returns:
        :class:`MemorySearchResult`. Raises :class:`NoBatchSizeFitsError` when
        even ``min_batch_size`` runs out of memory (in the search or in the
        confirmation). Any error that is not an out-of-memory error propagates
        unchanged, after the state is restored; so does Ctrl-C, pressed once or
        several times at any moment (restores are not interruptible).

    What the confirmation proves, and what it does not: the returned size ran
    ``confirm_steps`` training steps of *this* batch shape in *this* process
    right after the search. Memory can still differ later: longer sequences
    than the sample's (use ``max_length``), an evaluation loop with a larger
    batch (``find_eval_batch_size``), other tensors the training loop keeps
    (metrics, EMA weights, a second model), data-loader workers, and memory
    fragmentation that builds up over a long run. Keep the safety factor.

    Notes:
        - The snapshot of the training state lives in host memory. On a GPU it
          costs no device memory; on the CPU it shares the memory being probed,
          so ``max_fitting`` is lower by about (weights + optimizer state) /
          (memory per sample) — negligible unless the weights are a sizeable
          part of the budget.
        - Under ``torch.distributed`` every rank must call this with the same
          arguments; the ranks agree after each probe (see
          :mod:`wandb_batchsize.memory.distributed`); a non-OOM error on one
          rank makes the others raise ``PeerError`` at the same probe.
        - On the CPU, a process capped with ``RLIMIT_AS`` can lose capacity to
          address space the allocators keep (glibc's dynamic mmap threshold,
          oneDNN's primitive cache): the ceiling then depends on what ran
          before — the confirmation steps down to what still trains. TensorFlow's oneDNN kernels abort
          instead of raising at the cap: set ``TF_ENABLE_ONEDNN_OPTS=0`` there.
    """
    if not 0 < safety_factor <= 1:
        raise ValueError(f"safety_factor must be in (0, 1], got {safety_factor!r}")
    if int(multiple_of) != multiple_of or multiple_of < 1:
        raise ValueError(f"multiple_of must be a positive integer, got {multiple_of!r}")
    if isinstance(confirm_steps, bool) or int(confirm_steps) != confirm_steps or confirm_steps < 0:
        raise ValueError(f"confirm_steps must be an integer >= 0, got {confirm_steps!r}")
    target_bytes = parse_bytes(target_memory)
    max_length = check_max_length(max_length)
    sample_fn = length_sample_fn(sample_fn, max_length)
    sample = lengthen_sample(sample, max_length)
    CeilingSearch(min_batch_size, max_batch_size, tolerance=tolerance, max_probes=max_probes)
    input_shape = tuple(input_shape) if input_shape is not None else None
    backend = _search_backend(
        model, loss_fn=loss_fn, input_shape=input_shape, step_fn=step_fn, precision=precision
    )
    make_batch = backend.batch_maker(sample=sample, input_shape=input_shape, sample_fn=sample_fn)
    world = distributed.world_size()
    is_main = distributed.rank() == 0
    table = ProgressTable(verbose=verbose and is_main)
    meter = backend.meter(target_bytes)
    model_memory_mb = backend.model_memory_bytes / 2**20
    table.header(
        framework=backend.framework,
        device=backend.device_name,
        model_params=backend.model_params,
        model_memory_mb=model_memory_mb,
        budget_bytes=getattr(meter, "budget_now", lambda: None)(),
        min_batch_size=min_batch_size,
        max_batch_size=max_batch_size,
        world_size=world,
        meter=getattr(meter, "name", ""),
        max_length=max_length,
    )

    start = time.perf_counter()
    step_optimizer, owned = backend.search_optimizer(optimizer)
    session = SearchSession(
        backend,
        make_batch,
        step_optimizer,
        meter,
        backend.snapshot([] if owned else _optimizers(step_optimizer)),
        InterruptGuard(),
        target_bytes=target_bytes,
        steps_per_probe=steps_per_probe,
        eval_step=eval_step,
        tolerance=tolerance,
        max_probes=max_probes,
        multiple_of=int(multiple_of),
        on_probe=table.row,
        on_attempt=table.attempt,
    )
    safety = {"safety_factor": safety_factor, "multiple_of": int(multiple_of)}
    try:
        with session.guard:
            outcome = session.search(min_batch_size, max_batch_size)
            seconds = time.perf_counter() - start
            searched = _trained_size(outcome, min_batch_size, **safety)
            table.searched(outcome, searched, seconds=seconds, **safety)
            confirmation = _confirmed(session, searched, confirm_steps, min_batch_size)
            evaluation = None
            if find_eval_batch_size:
                table.section("evaluation batch (no-grad forward, eval mode)")
                evaluation = _eval_ceiling(
                    session, outcome, confirm_steps, min_batch_size, max_batch_size, safety
                )
    finally:
        backend.forget_steps()

    batch_size = confirmation.batch_size
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
        predicted=outcome.predicted,
        fit=outcome.fit,
        seconds=time.perf_counter() - start,
        stopped=outcome.stopped,
        world_size=world,
        searched_batch_size=searched,
        confirmed=confirmation.confirmed,
        confirm_steps=confirmation.steps,
        step_downs=confirmation.step_downs,
        confirm_seconds=confirmation.seconds,
        max_length=max_length,
        meter=getattr(meter, "name", ""),
        **safety,
        **(evaluation or {}),
    )
    table.footer(result)
    if log_to_wandb and is_main:
        from wandb_batchsize.tracking.finder_log import log_result

        log_result(result, verbose=verbose)
    return result


def _trained_size(
    outcome: SearchOutcome, min_batch_size: int, *, safety_factor: float, multiple_of: int
) -> int:
    """The size after the safety factor, or :class:`NoBatchSizeFitsError`."""
    if outcome.max_fitting is None:
        last = outcome.probes[-1] if outcome.probes else None
        why = f" ({last.error})" if last is not None and last.error else ""
        raise NoBatchSizeFitsError(
            f"min_batch_size={min_batch_size} does not fit in memory{why}. Use a smaller "
            "model or input, mixed precision, or a smaller min_batch_size with gradient "
            "accumulation (wandb_batchsize.accumulation_for)."
        )
    return apply_safety(
        outcome.max_fitting,
        safety_factor=safety_factor,
        multiple_of=multiple_of,
        min_batch_size=min_batch_size,
        ceiling_found=outcome.first_failing is not None,
    )


def _confirmed(
    session: SearchSession, size: int, steps: int, min_batch_size: int, *, eval_only: bool = False
) -> Confirmation:
    confirmation = session.confirm(size, steps, min_batch_size=min_batch_size, eval_only=eval_only)
    if steps and not confirmation.confirmed:
        what = "evaluation forward passes" if eval_only else "training steps"
        raise NoBatchSizeFitsError(
            f"the search found {size} but after it not even min_batch_size={min_batch_size} "
            f"ran {steps} {what} ({confirmation.error}): the memory the probes left behind "
            "was not given back. Start training in a fresh process with a batch size found "
            "with a lower target_memory, or lower min_batch_size."
        )
    return confirmation


def _eval_ceiling(
    session: SearchSession,
    train: SearchOutcome,
    confirm_steps: int,
    min_batch_size: int,
    max_batch_size: int,
    safety: dict[str, Any],
) -> dict[str, Any]:
    """The evaluation ceiling, starting from the training one (evaluation holds no gradients)."""
    start = max(min_batch_size, min(int(train.max_fitting or min_batch_size), max_batch_size))
    outcome = session.search(start, max_batch_size, eval_only=True)
    if outcome.max_fitting is None and start > min_batch_size:
        outcome = session.search(min_batch_size, max_batch_size, eval_only=True)
    searched = _trained_size(outcome, min_batch_size, **safety)
    confirmation = _confirmed(session, searched, confirm_steps, min_batch_size, eval_only=True)
    return {
        "eval_batch_size": confirmation.batch_size,
        "eval_max_fitting": outcome.max_fitting,
        "eval_confirmed": confirmation.confirmed,
        "eval_probes": tuple(
            dataclasses.replace(p, phase=f"eval {p.phase}") for p in outcome.probes
        ),
    }

"""PyTorch gradient-norm hooks: the two squared norms the gradient noise scale needs.

:class:`GradNormHooks` reads, from what training computes anyway,

- **small**: the gradient of each micro-batch (under gradient accumulation) or
  of each rank's local batch (under DDP), by a hook on every parameter that
  sees each gradient *before* it is added into ``.grad`` and before DDP's
  all-reduce;
- **big**: the accumulated, all-reduced gradient in ``.grad`` at the end of the
  backward pass that completes the optimizer step (after DDP has written it,
  before any clipping or optimizer).

Nothing is written to a gradient (training is bitwise unchanged) and nothing is
moved to the host: the norms stay on the device as 0-d tensors, reduced by
fused ``torch._foreach_norm`` kernels (low precision in float32).
:func:`squared_sums` turns one step's norms into the device pair
``(sum_i |g_i|^2, |G|^2)`` divided by the loss scale of a ``GradScaler``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import torch

__all__ = ["GradNormHooks", "StepNorms", "dist_world", "is_ddp", "mean_over_ranks", "squared_sums"]

_LOW_PRECISION = (torch.float16, torch.bfloat16)
# Elements of micro-batch gradients held per backward pass to be reduced by one fused
# kernel at its end (4 MiB in float32): fewer kernel launches for the many small
# tensors of a model, a bounded amount of extra memory.
_STASH_NUMEL = 1 << 20


def _queue_callback(fn: Any) -> None:
    torch.autograd.Variable._execution_engine.queue_callback(fn)


def _dense(grad: torch.Tensor) -> torch.Tensor:
    return grad.coalesce().values() if grad.is_sparse else grad


def _squares(norms: list[torch.Tensor], device: torch.device) -> torch.Tensor:
    """The squares of 0-d norm tensors as one 1-D tensor on ``device``, without a host sync."""
    dtype = torch.float64 if any(n.dtype == torch.float64 for n in norms) else torch.float32
    if all(n.device == device and n.dtype == dtype for n in norms):
        return torch.stack(norms).square_()
    return torch.stack([n.to(device, dtype, non_blocking=True) for n in norms]).square_()


def _norm(g: torch.Tensor) -> torch.Tensor:
    return torch.linalg.vector_norm(g, dtype=torch.float32 if g.dtype in _LOW_PRECISION else None)


def _grad_norms(grads: list[torch.Tensor]) -> list[torch.Tensor]:
    """2-norms of many tensors with fused kernels; low precision is reduced in float32."""
    low = [g for g in grads if g.dtype in _LOW_PRECISION]
    rest = [g for g in grads if g.dtype not in _LOW_PRECISION]
    try:
        norms = list(torch._foreach_norm(rest, 2)) if rest else []
        if low:
            norms += list(torch._foreach_norm(low, 2, dtype=torch.float32))
        return norms
    except (RuntimeError, TypeError):  # mixed devices or an old torch: one by one
        return [_norm(g) for g in grads]


def is_ddp(model: Any) -> bool:
    """Whether ``model`` is a ``DistributedDataParallel`` wrapper."""
    return isinstance(model, torch.nn.parallel.DistributedDataParallel)


def dist_world() -> tuple[int, int]:
    """``(world size, rank)`` of the initialised process group, else ``(1, 0)``."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_world_size(), torch.distributed.get_rank()
    return 1, 0


def mean_over_ranks(values: torch.Tensor) -> torch.Tensor:
    """The mean of ``values`` over the ranks of the process group (one all-reduce)."""
    out = values.contiguous()
    torch.distributed.all_reduce(out)
    return out / dist_world()[0]


def loss_scale(scaler: Any) -> torch.Tensor | None:
    """The current scale of an enabled ``GradScaler`` as a device tensor (no sync), else None."""
    if scaler is None or not getattr(scaler, "is_enabled", lambda: True)():
        return None
    scale = getattr(scaler, "_scale", None)
    return scale if isinstance(scale, torch.Tensor) else None


@dataclass
class StepNorms:
    """What the hooks saw during one optimizer step."""

    n_micro: int  # backward passes
    micro: list[torch.Tensor]  # per-tensor norms of every micro-batch gradient
    big: list[torch.Tensor] | None  # per-tensor norms of .grad after the completing backward
    big_at: int  # the backward after which ``big`` was read (-1: never)
    scale: torch.Tensor | None  # the loss scale that backward ran with

    @property
    def complete(self) -> bool:
        """Both norms were read and the big one after the step's last backward."""
        return (
            self.n_micro > 0 and bool(self.micro) and bool(self.big) and self.big_at == self.n_micro
        )


def squared_sums(norms: StepNorms, device: torch.device) -> torch.Tensor:
    """``[sum_i |g_i|^2, |G|^2]`` on ``device`` (a few kernels, no host sync), divided by
    the square of the loss scale when there is one."""
    with torch.no_grad():
        squares = _squares(norms.micro + (norms.big or []), device)
        n = len(norms.micro)
        pair = torch.stack([squares[:n].sum(), squares[n:].sum()])
        if norms.scale is not None:
            pair = pair / norms.scale.to(pair.device, pair.dtype).square()
    return pair


class GradNormHooks:
    """Per-parameter gradient hooks that collect one optimizer step's norms.

    ``completes_step`` says which backward completes a step: under DDP the
    wrapper's sync flag; with a known ``accumulation_steps`` the k-th backward;
    else every backward (the big norm is then read after each one).
    """

    def __init__(
        self,
        model: torch.nn.Module,
        *,
        accumulation_steps: int | None = None,
        scaler: Any | None = None,
    ) -> None:
        self.model = model
        self.accumulation_steps = accumulation_steps
        self.scaler = scaler
        self.ddp = model if is_ddp(model) else None
        self.measuring = True  # hooks do nothing while False
        self.device = torch.device("cpu")
        self._handles: list[Any] = []
        self._params: list[torch.nn.Parameter] = []
        self._reset()

    @property
    def attached(self) -> bool:
        return bool(self._handles)

    def attach(self, params: Iterable[torch.nn.Parameter] | None = None) -> None:
        """Register the hooks (idempotent)."""
        if self._handles:
            return
        self._params = [p for p in (params or self.model.parameters()) if p.requires_grad]
        if not self._params:
            raise ValueError("the model has no parameter that requires a gradient")
        self.device = self._params[0].device
        self._handles = [p.register_hook(self._on_grad) for p in self._params]

    def detach(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def _reset(self) -> None:
        self._in_backward = False
        self._norms: list[torch.Tensor] = []  # this backward's per-tensor norms
        self._stash: list[torch.Tensor] = []  # this backward's small gradients, not yet reduced
        self._stash_numel = 0
        self._step_norms: list[torch.Tensor] = []  # every micro-batch norm of the step
        self._n_micro = 0
        self._big_norms: list[torch.Tensor] | None = None
        self._big_at = -1
        self._scale: torch.Tensor | None = None

    def take_step(self) -> StepNorms:
        """The norms of the step that just ended; the next step starts empty."""
        out = StepNorms(self._n_micro, self._step_norms, self._big_norms, self._big_at, self._scale)
        self._reset()
        return out

    def _on_grad(self, grad: torch.Tensor) -> None:
        # Runs inside backward for every parameter gradient, before it is
        # accumulated into .grad: this is one micro-batch's (one rank's) gradient.
        # Small gradients are kept (up to _STASH_NUMEL elements per backward) and
        # reduced together by one fused kernel at the end of the backward; larger
        # ones get their norm here, so memory never grows by more than that.
        if not self.measuring:
            return None
        if not self._in_backward:
            self._in_backward = True
            self._norms = []
            self._stash = []
            self._stash_numel = 0
            _queue_callback(self._end_of_backward)
        if grad.is_sparse:
            grad = grad.coalesce().values()
        n = grad.numel()
        if self._stash_numel + n <= _STASH_NUMEL:
            self._stash.append(grad.detach())
            self._stash_numel += n
        else:
            with torch.no_grad():
                self._norms.append(_norm(grad))
        return None

    def _end_of_backward(self) -> None:
        # Queued by the first hook of a backward pass: runs when it finishes.
        norms, stash = self._norms, self._stash
        self._norms, self._stash, self._in_backward = [], [], False
        if stash:
            with torch.no_grad():
                norms = norms + _grad_norms(stash)
        if not norms:
            return
        self._step_norms.extend(norms)
        self._n_micro += 1
        scale = loss_scale(self.scaler)
        # the scale this backward ran with (GradScaler.update() changes it in place)
        self._scale = None if scale is None else scale.detach().clone()
        if self._completes_step():
            # queued from a callback, so it runs after DDP's own end-of-backward
            # callback (queued during backward) has written the averaged gradient
            _queue_callback(self._measure_big)

    def _completes_step(self) -> bool:
        if self.ddp is not None:
            return bool(getattr(self.ddp, "require_forward_param_sync", True))
        if self.accumulation_steps is not None:
            return self._n_micro == self.accumulation_steps
        return True

    def _measure_big(self) -> None:
        grads = [_dense(p.grad) for p in self._params if p.grad is not None]
        if not grads:
            return
        with torch.no_grad():
            self._big_norms = _grad_norms(grads)
        self._big_at = self._n_micro

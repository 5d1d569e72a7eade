"""Gradient noise scale during ordinary PyTorch training, at almost no cost.

:class:`GradientNoiseScaleMonitor` measures the two squared gradient norms that
the McCandlish et al. (2018) estimator needs (``wandb_batchsize.analysis.noise_scale``)
from what training computes anyway:

- **small**: the gradient of each micro-batch (under gradient accumulation) or
  of each rank's local batch (under DDP), before it is added into ``.grad``;
- **big**: the accumulated, all-reduced gradient in ``.grad`` at the end of the
  backward pass that completes the optimizer step.

The hooks that read them are :class:`~wandb_batchsize.backends.torch_grads.GradNormHooks`;
this module adapts optimizer steps to the estimator. Nothing is written to a
gradient, so training is bitwise unchanged. The norms
stay on the device as 0-d tensors; they are stacked and moved to the host once
per ``log_every`` optimizer steps (one transfer, no per-step host sync), then
fed to the numpy :class:`~wandb_batchsize.analysis.noise_scale.GradientNoiseScale`.

It needs two different batch sizes: gradient accumulation with at least two
micro-batches, or DDP with at least two ranks (or both). With neither, split
each batch into two backward passes of half the loss (accumulation of 2).

Plain PyTorch loop::

    gns = GradientNoiseScaleMonitor(model, batch_size=32, accumulation_steps=4)
    for step, micro_batches in enumerate(loader):
        for x, y in micro_batches:                 # 4 micro-batches of 32
            (loss_fn(model(x), y) / 4).backward()  # loss divided by the steps: "mean"
        gns.step()                                 # once per optimizer step
        optimizer.step(); optimizer.zero_grad()
    print(gns.result().summary())

``gns/B_simple``, ``gns/grad_sq``, ``gns/trace_cov`` (and the band) are logged to
the active W&B run against ``gns/step`` every ``log_every`` steps.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable
from typing import Any

import numpy as np
import torch

from wandb_batchsize.analysis.noise_scale import GradientNoiseScale, NoiseScaleResult
from wandb_batchsize.backends.torch_grads import (
    GradNormHooks,
    dist_world,
    mean_over_ranks,
    squared_sums,
)
from wandb_batchsize.tracking.run import WandbSink

__all__ = ["GradientNoiseScaleMonitor"]


class GradientNoiseScaleMonitor:
    """Estimate ``B_simple`` while a model trains; log it to W&B.

    Args:
        model: the module being trained, or its ``DistributedDataParallel``
            wrapper (pass the wrapper under DDP: its sync flag tells which
            backward completes a step, and the world size comes with it).
        batch_size: examples per micro-batch per rank (``step(batch_size=...)``
            overrides it for one step, e.g. a short last batch).
        accumulation_steps: micro-batches per optimizer step, when known. When
            ``None`` it is counted (the number of backward passes between two
            :meth:`step` calls) and the big gradient is read after every
            backward (a little more work); under DDP the wrapper's sync flag
            is used instead.
        world_size: ranks whose gradients are averaged into ``.grad``; default:
            the ``torch.distributed`` world size when ``model`` is DDP, else 1.
        loss_reduction: ``"mean"`` when each micro-batch loss is divided by the
            number of accumulation steps (Lightning, Transformers and most
            loops), ``"sum"`` when it is not. Only ``grad_sq`` and
            ``trace_cov`` depend on it; ``B_simple`` does not.
        scaler: a ``torch.amp.GradScaler`` whose loss scale is divided out of
            both norms (``B_simple`` is scale-free; the other two are not).
        log_every: optimizer steps between host transfers, estimates and logs.
        every: measure one optimizer step in ``every`` (1 = all).
        decay: EMA decay of the estimator (``None`` weighs all steps equally).
        confidence: level of the ``B_simple`` band.
        run: the W&B run to log to (default: the active run at each log); ``log=False``
            logs nothing.
        prefix: key namespace, ``"gns"`` gives ``gns/B_simple`` against ``gns/step``.
        sync_ranks: under DDP, average the per-rank small norms over ranks at
            each log (one collective per ``log_every`` steps); rank 0 logs.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        batch_size: int | None = None,
        *,
        accumulation_steps: int | None = None,
        world_size: int | None = None,
        loss_reduction: str = "mean",
        scaler: Any | None = None,
        log_every: int = 50,
        every: int = 1,
        decay: float | None = 0.99,
        confidence: float = 0.95,
        run: Any | None = None,
        log: bool = True,
        prefix: str = "gns",
        sync_ranks: bool = True,
    ) -> None:
        if loss_reduction not in ("mean", "sum"):
            raise ValueError(f"loss_reduction must be 'mean' or 'sum', got {loss_reduction!r}")
        for name, value in (("log_every", log_every), ("every", every)):
            if int(value) < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")
        if accumulation_steps is not None and int(accumulation_steps) < 1:
            raise ValueError(f"accumulation_steps must be >= 1, got {accumulation_steps}")
        if batch_size is not None and int(batch_size) < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.model = model
        self.batch_size = None if batch_size is None else int(batch_size)
        self.accumulation_steps = None if accumulation_steps is None else int(accumulation_steps)
        self.loss_reduction = loss_reduction
        self.scaler = scaler
        self.log_every = int(log_every)
        self.every = int(every)
        self.prefix = prefix.rstrip("/")
        self.sync_ranks = sync_ranks
        self.hooks = GradNormHooks(model, accumulation_steps=self.accumulation_steps, scaler=scaler)
        world, self.rank = dist_world()
        if world_size is None:
            world_size = world if self.hooks.ddp is not None else 1
        if int(world_size) < 1:
            raise ValueError(f"world_size must be >= 1, got {world_size}")
        self.world_size = int(world_size)
        self.tracker = GradientNoiseScale(decay, confidence=confidence)
        self.latest: NoiseScaleResult | None = None
        self.n_skipped = 0
        self._log = log
        self._run = run
        self._sink: WandbSink | None = None
        self._warned_sizes = False
        self._steps = 0
        self._logged_step = 0
        self._pending: list[torch.Tensor] = []
        # per pending step: b_small, b_big, and the host factors of the two raw sums
        self._pending_sizes: list[tuple[float, float, float, float]] = []
        self.attach()

    # -- hooks (backends.torch_grads) ----------------------------------------

    def attach(
        self, params: Iterable[torch.nn.Parameter] | None = None
    ) -> GradientNoiseScaleMonitor:
        """Register the gradient hooks (done by the constructor; idempotent)."""
        self.hooks.attach(params)
        return self

    def detach(self) -> None:
        """Remove the hooks; measured steps are kept and still flushed."""
        self.hooks.detach()

    close = detach

    def __enter__(self) -> GradientNoiseScaleMonitor:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.finish()

    # -- per optimizer step --------------------------------------------------

    def step(
        self, batch_size: float | None = None, *, step: int | None = None
    ) -> NoiseScaleResult | None:
        """Close one optimizer step: call it once after its last ``backward()``.

        It may come before or after ``optimizer.step()``, clipping or
        ``zero_grad()``: the norms were taken during backward. Returns the new
        estimate on the steps where it logs (every ``log_every``), else None.
        ``step`` is the value logged as ``gns/step`` (default: steps seen).
        """
        self._steps += 1
        self._logged_step = self._steps if step is None else int(step)
        norms = self.hooks.take_step()
        measured = self.hooks.measuring
        self.hooks.measuring = self._steps % self.every == 0 or self.every == 1
        if not measured:
            return None
        k = norms.n_micro
        if not norms.complete:
            # no backward, or the step ended early (a short last accumulation window)
            self.n_skipped += 1
            return None
        b_small = float(batch_size if batch_size is not None else self.batch_size or 0)
        if b_small <= 0:
            raise ValueError(
                "batch size unknown: pass batch_size= (examples per micro-batch per rank) "
                "to GradientNoiseScaleMonitor or to step()"
            )
        b_big = b_small * k * self.world_size
        if b_big <= b_small:
            self.n_skipped += 1
            if not self._warned_sizes:
                self._warned_sizes = True
                warnings.warn(
                    "gradient noise scale needs two batch sizes: use gradient accumulation "
                    "(>= 2 backward passes per optimizer step) or DDP with >= 2 ranks; "
                    "this step had one backward on one rank, so nothing was measured",
                    RuntimeWarning,
                    stacklevel=2,
                )
            return None
        pair = squared_sums(norms, self.hooks.device)  # on the device, no sync
        # host-side factors to the mean squared micro-batch norm and the squared mean
        # gradient: with "mean" each micro-batch gradient arrived divided by k, so
        # mean |g_i|^2 = k^2 * sum / k; with "sum" .grad holds k times the mean
        factors = (float(k), 1.0) if self.loss_reduction == "mean" else (1.0 / k, 1.0 / k**2)
        self._pending.append(pair)
        self._pending_sizes.append((b_small, b_big, *factors))
        if len(self._pending) >= self.log_every:
            return self.flush()
        return None

    on_step = step

    def flush(self) -> NoiseScaleResult | None:
        """Move the pending norms to the host (one transfer), update, log; the latest estimate."""
        if self._pending:
            data = torch.stack(self._pending)
            sizes = np.asarray(self._pending_sizes, dtype=float)
            self._pending, self._pending_sizes = [], []
            if self.sync_ranks and self.world_size > 1 and dist_world()[0] > 1:
                data = torch.stack([mean_over_ranks(data[:, 0]), data[:, 1]], dim=1)
            host = data.detach().to("cpu", torch.float64).numpy()
            self.tracker.update(
                host[:, 0] * sizes[:, 2], host[:, 1] * sizes[:, 3], sizes[:, 0], sizes[:, 1]
            )
            if self.tracker.n_steps > 0:
                self.latest = self.tracker.result()
                self._log_result(self.latest)
        if self.tracker.n_steps == 0:
            return None
        return self.latest

    def result(self) -> NoiseScaleResult:
        """The estimate from every step so far (flushes pending norms first)."""
        latest = self.flush()
        if latest is None:
            raise ValueError(
                "no gradient noise scale measured yet: it needs optimizer steps with "
                "gradient accumulation >= 2 or DDP >= 2 ranks, closed by step()"
            )
        return latest

    def finish(self) -> NoiseScaleResult | None:
        """Flush, write the final estimate to the run summary, remove the hooks."""
        result = self.flush()
        if result is not None:
            sink = self._get_sink()
            if sink is not None:
                final = result.as_dict(f"{self.prefix}/")
                final[f"{self.prefix}/n_steps"] = result.n_steps
                sink.summary_update(final)
        self.detach()
        return result

    # -- W&B -----------------------------------------------------------------

    def _get_sink(self) -> WandbSink | None:
        if not self._log or self.rank != 0:
            return None
        if self._sink is None or not self._sink.enabled:
            sink = WandbSink(self._run, name="wandb-batchsize gradient noise scale")
            if not sink.enabled:
                return None
            self._sink = sink
        return self._sink

    def _log_result(self, result: NoiseScaleResult) -> None:
        sink = self._get_sink()
        if sink is None:
            return
        step_key = f"{self.prefix}/step"
        sink.define_step_metric(f"{self.prefix}/*", step_key)
        data: dict[str, float] = {step_key: self._logged_step}
        data.update(result.as_dict(f"{self.prefix}/"))
        if not math.isfinite(result.B_simple):
            data.pop(f"{self.prefix}/B_simple", None)
        sink.log(data)

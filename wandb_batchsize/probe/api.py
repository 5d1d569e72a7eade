"""``probe_batch_sizes`` for a PyTorch model (``pip install wandb-batchsize[torch]``).

``probe_batch_sizes(model, dataset, loss_fn)`` trains ``model`` briefly at each
batch size from the same starting weights, with a fresh optimizer and the same
seed, and analyses the metric against the batch size in sweep mode. The model,
its buffers, ``requires_grad``/``.grad``, train/eval mode and the global RNG
states are put back exactly (bitwise) afterwards, also after an error or
KeyboardInterrupt. The framework part (batches, the step, the state) is
:class:`wandb_batchsize.backends.torch.TorchBackend`; Keras models go through
``wandb_batchsize.integrations.keras.probe_batch_sizes(model, x, y)``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from wandb_batchsize.backends import backend_for
from wandb_batchsize.probe.result import ProbeResult
from wandb_batchsize.probe.session import ProbeOptions, probe_with_backend

__all__ = ["probe_batch_sizes"]


def probe_batch_sizes(
    model: Any,
    dataset: Any,
    loss_fn: Callable[..., Any] | None = None,
    *,
    batch_sizes: Sequence[int] | None = None,
    budget: str = "samples",
    samples_per_size: int | None = None,
    steps_per_size: int = 50,
    optimizer_cls: Any = None,
    optimizer_kwargs: Mapping[str, Any] | None = None,
    lr_scaling: str | None = None,
    base_batch_size: int | None = None,
    repeats: int = 1,
    seed: int = 0,
    device: Any = None,
    max_batch: int | None = None,
    val_data: Any = None,
    metric: str = "auto",
    num_workers: int = 0,
    collate_fn: Callable[[list[Any]], Any] | None = None,
    n_bootstrap: int = 1000,
    verbose: bool = True,
    log_to_wandb: bool = True,
) -> ProbeResult:
    """Train briefly at several batch sizes and find where the loss starts to suffer.

    Args:
        model: the model, at the weights the probes start from (left unchanged).
        dataset: a ``torch.utils.data.Dataset`` yielding ``(input, target)``
            (shuffled with a seeded generator, ``drop_last=True``, reshuffled
            each pass), or a factory ``f(batch_size) -> iterable of batches``
            (a DataLoader; seeded through ``torch.manual_seed``; batches smaller
            than the size asked for are skipped so each step has the full batch).
        loss_fn: ``loss_fn(model(x), y)`` for a batch ``(x, y)`` (``(*xs, y)``
            calls ``model(*xs)``; a dict batch calls ``model(**batch)`` and
            ``loss_fn(output, batch)``; a bare tensor ``x`` gives
            ``loss_fn(model(x), x)``). None: the model's output is the loss (a
            tensor, or an object with ``.loss`` / ``["loss"]`` as in transformers).
        batch_sizes: the sizes to probe; default powers of two from 8 to
            ``min(max_batch or 1024, len(dataset))``.
        budget: ``"samples"`` (default): every size sees ``samples_per_size``
            samples (default ``steps_per_size * max(batch_sizes)``), the honest
            comparison at equal data and compute. ``"steps"``: every size takes
            ``steps_per_size`` steps, as the published ``find_optimal_batch_size``
            does (larger batches then see more data and look better).
        optimizer_cls, optimizer_kwargs: a fresh optimizer per probe: a class
            (``cls(params, **optimizer_kwargs)``) or a factory ``f(params, lr)``;
            default ``torch.optim.Adam(lr=1e-3)``.
        lr_scaling: None (same lr everywhere), ``"linear"`` or ``"sqrt"``: lr at
            size B is ``lr * (B / base_batch_size)`` or its square root;
            ``base_batch_size`` defaults to the smallest probed size.
        repeats: probes per size; repeat ``r`` uses seed ``seed + r`` at every
            size and the analysis aggregates them (mean, standard error and a
            bootstrap interval for K_c).
        device: where to train; default the model's device. The model is moved
            back afterwards.
        max_batch: the memory ceiling (e.g. from ``find_batch_size``): caps the
            default sizes and leaves out larger given sizes.
        val_data: a Dataset or an iterable of batches: when given, the metric is
            the validation loss after each probe (``metric="auto"``).
        metric: ``"auto"``, ``"train_loss"`` (mean of the last third of the
            probe's losses, as published) or ``"val_loss"``.
        verbose: one line per size on stderr (and a bar on a terminal).
        log_to_wandb: log the probe table, the chi chart and ``probe/K_c`` to
            the active W&B run, if there is one.

    A size that runs out of memory is recorded (status ``"oom"``) and larger
    sizes are skipped; the others are kept. With fewer than four successful
    sizes the result has the table but ``sweep=None`` and a ``message``.
    """
    backend = backend_for(
        model,
        loss_fn=loss_fn,
        optimizer=optimizer_cls,
        optimizer_kwargs=optimizer_kwargs,
        device=device,
        num_workers=num_workers,
        collate_fn=collate_fn,
    )
    return probe_with_backend(backend, dataset, ProbeOptions.pick(locals()), val_data=val_data)

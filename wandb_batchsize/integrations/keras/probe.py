"""``probe_batch_sizes`` for a Keras 3 model (TensorFlow backend; ``wandb-batchsize[tensorflow]``).

    result = probe_batch_sizes(model, x, y, batch_sizes=[16, 32, 64, 128, 256])

Each probe trains ``model`` on ``(x, y)`` with its own ``tf.GradientTape``
step and a fresh optimizer (:class:`wandb_batchsize.backends.keras.KerasBackend`),
so the per-step loss is the loss of that batch (in Keras 3, ``fit``'s
``logs["loss"]`` is a running mean over the epoch) and the model's compile
state (its optimizer, metrics, loss) is never touched. Every variable of the
model (weights, batch-norm statistics, dropout seed states) and the Python,
NumPy and TensorFlow global RNG states are restored bitwise after the probes,
also after an error or KeyboardInterrupt.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from wandb_batchsize.backends.keras import KerasBackend
from wandb_batchsize.backends.keras_data import take
from wandb_batchsize.probe.result import ProbeResult
from wandb_batchsize.probe.session import ProbeOptions, probe_with_backend

__all__ = ["probe_batch_sizes"]


def probe_batch_sizes(
    model: Any,
    x: Any,
    y: Any,
    *,
    batch_sizes: Sequence[int] | None = None,
    budget: str = "samples",
    samples_per_size: int | None = None,
    steps_per_size: int = 50,
    optimizer: Any = None,
    loss: Any = None,
    lr_scaling: str | None = None,
    base_batch_size: int | None = None,
    repeats: int = 1,
    seed: int = 0,
    max_batch: int | None = None,
    validation_data: tuple[Any, Any] | None = None,
    metric: str = "auto",
    n_bootstrap: int = 1000,
    verbose: bool = True,
    log_to_wandb: bool = True,
) -> ProbeResult:
    """Train a Keras model briefly at several batch sizes; analyse the loss in sweep mode.

    Args:
        model: a built Keras 3 model (an unbuilt one is built on ``x[:1]``).
        x, y: NumPy arrays (``x`` may be a list or dict of arrays for several
            inputs); shuffled with a seeded generator, reshuffled every pass,
            full batches only.
        optimizer: a Keras optimizer used as a template (a fresh copy per probe
            from its config), a name, or None: the model's compiled optimizer's
            config, else ``Adam(1e-3)``.
        loss: a Keras loss (object, function or name); None: the compiled loss.
        validation_data: ``(x_val, y_val)``; then the metric is the validation
            loss after each probe (``metric="auto"``).

    The other arguments (``batch_sizes``, ``budget``, ``samples_per_size``,
    ``steps_per_size``, ``lr_scaling``, ``repeats``, ``max_batch`` ...) are
    those of ``wandb_batchsize.probe_batch_sizes``. Repeat ``r`` shuffles the
    data with seed ``seed + r`` and offsets the dropout seed states by it.
    """
    import keras

    if keras.backend.backend() != "tensorflow":
        raise NotImplementedError(
            "the Keras probe trains with tf.GradientTape and needs the TensorFlow backend "
            f"(KERAS_BACKEND=tensorflow); this Keras runs on {keras.backend.backend()!r}"
        )
    if loss is None and getattr(model, "loss", None) is None:
        raise ValueError("no loss: pass loss=... or compile the model with one")
    if not model.built:
        model(take(x, slice(0, 1)))
    backend = KerasBackend(model, loss_fn=loss, optimizer=optimizer)
    return probe_with_backend(backend, (x, y), ProbeOptions.pick(locals()), val_data=validation_data)

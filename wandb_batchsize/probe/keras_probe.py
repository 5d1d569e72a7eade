"""Batch-size probes for a Keras 3 model (TensorFlow backend; ``wandb-batchsize[tensorflow]``).

    result = probe_batch_sizes(model, x, y, batch_sizes=[16, 32, 64, 128, 256])

Each probe trains ``model`` on ``(x, y)`` with its own ``tf.GradientTape``
step and a fresh optimizer, so the per-step loss is the loss of that batch (in
Keras 3, ``fit``'s ``logs["loss"]`` is a running mean over the epoch) and the
model's compile state (its optimizer, metrics, loss) is never touched. Every
variable of the model (weights, batch-norm statistics, dropout seed states) and
the Python, NumPy and TensorFlow global RNG states are restored bitwise after
the probes, also after an error or KeyboardInterrupt.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from wandb_batchsize.backends.keras_state import KerasSnapshot
from wandb_batchsize.backends.oom import is_oom_error, release_memory
from wandb_batchsize.probe.core import (
    ProbeResult,
    Progress,
    TrainOutcome,
    build_result,
    choose_metric,
    plan_budget,
    resolve_batch_sizes,
    run_probes,
)

__all__ = ["probe_batch_sizes", "KerasBackend"]

DEFAULT_LR = 1e-3
VAL_BATCH_SIZE = 1024


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
    backend = KerasBackend(
        model, x, y, optimizer=optimizer, loss=loss, validation_data=validation_data
    )
    sizes, left_out = resolve_batch_sizes(
        batch_sizes, n_samples=backend.n_samples, max_batch=max_batch
    )
    plan = plan_budget(
        sizes, budget=budget, samples_per_size=samples_per_size, steps_per_size=steps_per_size
    )
    chosen = choose_metric(metric, validation_data is not None)
    progress = Progress(enabled=verbose, label=chosen)
    progress.header(plan, repeats, chosen, "keras")
    with backend:
        records = run_probes(
            backend,
            plan,
            repeats=repeats,
            seed=seed,
            lr_scaling=lr_scaling,
            base_batch_size=base_batch_size,
            use_val=chosen == "val_loss",
            progress=progress,
        )
    return build_result(
        records,
        plan,
        metric=chosen,
        framework="keras",
        left_out=left_out,
        n_bootstrap=n_bootstrap,
        seed=seed,
        log_to_wandb=log_to_wandb,
    )


def _leaves(x: Any) -> list[Any]:
    if isinstance(x, Mapping):
        return [leaf for v in x.values() for leaf in _leaves(v)]
    if isinstance(x, (list, tuple)):
        return [leaf for v in x for leaf in _leaves(v)]
    return [x]


def _take(x: Any, idx: Any) -> Any:
    if isinstance(x, Mapping):
        return {k: _take(v, idx) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return type(x)(_take(v, idx) for v in x)
    return x[idx]


def _first_rows(x: Any, n: int) -> Any:
    return _take(x, slice(0, n))


def _n_rows(x: Any) -> int:
    leaves = _leaves(x)
    if not leaves:
        raise ValueError("x is empty")
    sizes = {int(np.shape(leaf)[0]) for leaf in leaves}
    if len(sizes) != 1:
        raise ValueError(f"the inputs have different numbers of rows: {sorted(sizes)}")
    return sizes.pop()


class KerasBackend:
    """Runs the probes of one Keras model (TensorFlow backend)."""

    def __init__(
        self,
        model: Any,
        x: Any,
        y: Any,
        *,
        optimizer: Any = None,
        loss: Any = None,
        validation_data: tuple[Any, Any] | None = None,
    ) -> None:
        import keras

        if keras.backend.backend() != "tensorflow":
            raise NotImplementedError(
                "the Keras probe trains with tf.GradientTape and needs the TensorFlow backend "
                f"(KERAS_BACKEND=tensorflow); this Keras runs on {keras.backend.backend()!r}"
            )
        self.model = model
        self.x, self.y = x, y
        self.n_samples = _n_rows(x)
        if _n_rows(y) != self.n_samples:
            raise ValueError(f"x has {self.n_samples} rows but y has {_n_rows(y)}")
        if not model.built:
            model(_first_rows(x, 1))
        loss = loss if loss is not None else getattr(model, "loss", None)
        if loss is None:
            raise ValueError("no loss: pass loss=... or compile the model with one")
        self.loss_fn = keras.losses.get(loss) if isinstance(loss, (str, dict)) else loss
        template = optimizer if optimizer is not None else getattr(model, "optimizer", None)
        if template is None:
            template = keras.optimizers.Adam(learning_rate=DEFAULT_LR)
        elif isinstance(template, str):
            template = keras.optimizers.get(template)
        self.optimizer_class = type(template)
        self.optimizer_config = template.get_config()
        self.validation_data = validation_data
        self._state: KerasSnapshot | None = None

    # -- lifecycle -------------------------------------------------------------
    def __enter__(self) -> KerasBackend:
        self._state = KerasSnapshot.take(self.model)
        self._seed_states = [
            (v, np.array(v.numpy(), copy=True))
            for v in self.model.variables
            if "seed_generator_state" in v.path
        ]
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.restore()
        self._state = None

    def restore(self) -> None:
        if self._state is not None:
            self._state.restore()

    def is_oom(self, exc: BaseException) -> bool:
        return is_oom_error(exc)

    def release(self, exc: BaseException | None = None) -> None:
        if exc is None:
            release_memory()
        else:
            release_memory(exc)

    # -- one probe ----------------------------------------------------------------
    def _optimizer(self, lr_factor: float) -> tuple[Any, float | None]:
        config = dict(self.optimizer_config)
        lr = config.get("learning_rate")
        if not isinstance(lr, (int, float)):
            if lr_factor != 1.0:
                raise ValueError(
                    "lr_scaling needs a constant learning rate on the optimizer, "
                    f"got {type(lr).__name__}"
                )
            lr = None
        elif lr_factor != 1.0:
            lr = float(lr) * lr_factor
            config["learning_rate"] = lr
        return self.optimizer_class.from_config(config), None if lr is None else float(lr)

    def _mean_loss(self, y_true: Any, y_pred: Any) -> Any:
        import tensorflow as tf

        return tf.reduce_mean(self.loss_fn(y_true, y_pred))

    def train(
        self,
        batch_size: int,
        steps: int,
        seed: int,
        lr_factor: float,
        on_step: Callable[[int], None],
    ) -> TrainOutcome:
        import tensorflow as tf

        model = self.model
        for var, initial in self._seed_states:  # vary dropout with the repeat's seed
            value = initial.copy()
            value[0] = value[0] + seed
            var.assign(value)
        optimizer, lr = self._optimizer(lr_factor)
        variables = model.trainable_variables
        optimizer.build(variables)
        mean_loss = self._mean_loss

        @tf.function
        def train_step(xb: Any, yb: Any) -> Any:
            with tf.GradientTape() as tape:
                pred = model(xb, training=True)
                loss = mean_loss(yb, pred)
                if model.losses:
                    loss = loss + tf.add_n(model.losses)
            grads = tape.gradient(loss, variables)
            optimizer.apply_gradients(zip(grads, variables, strict=True))
            return loss

        rng = np.random.default_rng(int(seed))
        n = self.n_samples
        order = rng.permutation(n)
        cursor = 0
        losses: list[Any] = []
        start = time.perf_counter()
        warmup = 0.0
        for step in range(steps):
            if cursor + batch_size > n:
                order, cursor = rng.permutation(n), 0
            idx = order[cursor : cursor + batch_size]
            cursor += batch_size
            loss = train_step(_take(self.x, idx), _take(self.y, idx))
            losses.append(loss)
            if step == 0:
                float(loss)  # wait for the first step (tracing) to finish
                warmup = time.perf_counter() - start
            on_step(step + 1)
        values = [float(v) for v in losses]
        seconds = time.perf_counter() - start
        del train_step, losses
        val_loss = self.evaluate() if self.validation_data is not None else None
        return TrainOutcome(
            losses=values,
            seconds=seconds,
            warmup_seconds=warmup,
            val_loss=val_loss,
            lr=lr,
            samples=len(values) * batch_size,
        )

    def evaluate(self) -> float:
        """Mean loss over ``validation_data`` (per-sample weighted), ``training=False``."""
        x_val, y_val = self.validation_data  # type: ignore[misc]
        n = _n_rows(x_val)
        total = 0.0
        for start in range(0, n, VAL_BATCH_SIZE):
            rows = slice(start, min(start + VAL_BATCH_SIZE, n))
            pred = self.model(_take(x_val, rows), training=False)
            count = rows.stop - rows.start
            total += float(self._mean_loss(_take(y_val, rows), pred)) * count
        return total / n if math.isfinite(total) else float("nan")

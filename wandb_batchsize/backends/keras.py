"""The Keras 3 backend: the one place that runs a training step of a Keras model.

:class:`KerasBackend` meets :class:`wandb_batchsize.backends.base.Backend`.
Two training steps:

- the model's **own compiled step** (``optimizer=COMPILED``, the memory search
  of a compiled model): ``model.train_on_batch``, the train function (XLA or
  not, as ``compile`` chose) that ``fit`` runs, so the memory is the memory of
  the real run;
- a **``tf.GradientTape`` step** with a given optimizer (probes, branches, an
  uncompiled model): the loss of that batch (plus ``model.losses``), the
  model's compile state (its optimizer, metrics, loss) untouched. It needs the
  TensorFlow backend.

Readings: on a TensorFlow GPU, ``tf.config.experimental.get_memory_info``
(peak since ``reset_memory_stats``), with ``target_memory`` as the budget; on
the CPU, the host-process meter. TensorFlow's oneDNN CPU kernels abort the
process (``std::bad_alloc``) when the address space runs out instead of
raising ``ResourceExhaustedError``: set ``TF_ENABLE_ONEDNN_OPTS=0`` before
importing TensorFlow where a CPU run may hit its memory limit.
"""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from wandb_batchsize.backends import keras_data, oom
from wandb_batchsize.backends.base import check_precision, seed_host
from wandb_batchsize.backends.host_memory import Reading, host_meter
from wandb_batchsize.backends.keras_state import KerasSnapshot

DEFAULT_LR = 1e-3
EVAL_BATCH_SIZE = 1024
#: ``train_step(batch, COMPILED)`` runs the model's own compiled train step
COMPILED = "compiled"


def is_keras_model(model: Any) -> bool:
    """True for a Keras 3 (or tf.keras) model, judged without importing Keras."""
    for cls in type(model).__mro__:
        module = cls.__module__ or ""
        if cls.__name__ in ("Model", "Layer") and module.startswith(
            ("keras", "tf_keras", "tensorflow")
        ):
            return True
    return False


class TFDeviceMeter:
    """Peak memory of a TensorFlow GPU during a probe."""

    name = "tensorflow-gpu"

    def __init__(self, device: str, target_bytes: int | None = None) -> None:
        import tensorflow as tf

        self.tf = tf
        self.device = device
        self.target_bytes = target_bytes

    def budget_now(self) -> int | None:
        return self.target_bytes

    def start(self) -> None:
        with contextlib.suppress(Exception):
            self.tf.config.experimental.reset_memory_stats(self.device)

    def stop(self) -> Reading:
        try:
            info = self.tf.config.experimental.get_memory_info(self.device)
        except Exception:  # noqa: BLE001 - no memory info on this device
            return Reading()
        peak = int(info["peak"])
        budget = self.target_bytes
        return Reading(
            peak_bytes=peak,
            headroom_bytes=None if budget is None else budget - peak,
            budget_bytes=budget,
        )

    def over_budget(self, reading: Reading) -> bool:
        return reading.headroom_bytes is not None and reading.headroom_bytes < 0


def _gpu_device() -> str | None:
    with contextlib.suppress(Exception):
        import tensorflow as tf

        if tf.config.list_logical_devices("GPU"):
            return "GPU:0"
    return None


class KerasBackend:
    """Runs steps of one Keras model (see the module docstring).

    Args:
        model: a Keras 3 model; an unbuilt one is built from ``input_shape``.
        loss_fn: a Keras loss (object, function, name); None: the compiled
            loss, else mean squared error.
        optimizer: the template of the fresh optimizers :meth:`new_optimizer`
            makes (a copy from its config), a name, or None: the compiled
            optimizer's config, else ``Adam(1e-3)``.
        input_shape: the per-sample shape, to build an unbuilt model.
    """

    framework = "keras"

    def __init__(
        self,
        model: Any,
        *,
        loss_fn: Any = None,
        optimizer: Any = None,
        input_shape: tuple[int, ...] | None = None,
        step_fn: Any = None,
        precision: str | None = None,
        stand_in_loss: bool = False,
    ) -> None:
        import keras

        del stand_in_loss  # without a loss, Keras steps fall back to mean squared error

        if step_fn is not None:
            raise NotImplementedError(
                "step_fn is a PyTorch option; a compiled Keras model is probed with its own "
                "train step (override Model.train_step for a custom one)"
            )
        if check_precision(precision) is not None:
            raise NotImplementedError(
                "precision= is a PyTorch option; for Keras set the policy before building the "
                "model: keras.mixed_precision.set_global_policy('mixed_bfloat16')"
            )

        self.keras = keras
        self.model = model
        if not model.built:
            if input_shape is None:
                raise ValueError(
                    "the Keras model is not built yet: build it (call it once, or give it an "
                    "Input layer), or pass input_shape=(...)"
                )
            model.build((None, *input_shape))
        self.compiled = (
            bool(getattr(model, "compiled", False))
            and getattr(model, "optimizer", None) is not None
        )
        self.user_loss = loss_fn
        loss = loss_fn if loss_fn is not None else getattr(model, "loss", None)
        self.loss = loss
        self.loss_fn = keras.losses.get(loss) if isinstance(loss, (str, dict)) else loss
        template = optimizer if optimizer is not None else getattr(model, "optimizer", None)
        if template is None:
            template = keras.optimizers.Adam(learning_rate=DEFAULT_LR)
        elif isinstance(template, str):
            template = keras.optimizers.get(template)
        self.optimizer_class = type(template)
        self.optimizer_config = template.get_config()
        self.user_optimizer = optimizer
        self.gpu = _gpu_device()
        self._steps: dict[int, Any] = {}

    # -- facts -----------------------------------------------------------------
    @property
    def device_name(self) -> str:
        return f"keras/{self.keras.backend.backend()} {self.gpu or 'cpu'}"

    @property
    def model_params(self) -> int:
        return int(self.model.count_params())

    @property
    def model_memory_bytes(self) -> int:
        return self.model_params * 4 * 4  # the seed's estimate, float32

    @property
    def resident_bytes(self) -> int:
        return sum(int(np.prod(v.shape)) * 4 for v in self.model.weights)

    # -- batches ---------------------------------------------------------------
    def batch_maker(
        self,
        sample: Any = None,
        input_shape: tuple[int, ...] | None = None,
        sample_fn: Callable[[int], Any] | None = None,
    ) -> Callable[[int], Any]:
        return keras_data.sample_batches(self.model, self.loss, sample, input_shape, sample_fn)

    def data_batches(self, data: Any, batch_size: int, seed: int) -> Iterator[Any]:
        x, y = data
        return keras_data.array_batches(x, y, batch_size, seed)

    def data_len(self, data: Any) -> int | None:
        x, y = data
        n = keras_data.n_rows(x)
        if keras_data.n_rows(y) != n:
            raise ValueError(f"x has {n} rows but y has {keras_data.n_rows(y)}")
        return n

    def batch_len(self, batch: Any) -> int:
        return keras_data.n_rows(batch[0])

    # -- training --------------------------------------------------------------
    def seed(self, seed: int) -> None:
        """Seed the host RNGs and offset the dropout seed states by ``seed``."""
        seed_host(seed)
        for var in self.model.variables:
            if "seed_generator_state" in var.path:
                value = np.array(var.numpy(), copy=True)
                value[0] = value[0] + seed
                var.assign(value)

    def new_optimizer(
        self, lr: float | None = None, lr_factor: float = 1.0
    ) -> tuple[Any, float | None]:
        config = dict(self.optimizer_config)
        current = config.get("learning_rate")
        if lr is None and not isinstance(current, (int, float)):
            if lr_factor != 1.0:
                raise ValueError(
                    "lr scaling needs a constant learning rate on the optimizer, "
                    f"got {type(current).__name__}"
                )
            return self.optimizer_class.from_config(config), None
        value = float(lr) if lr is not None else float(current) * lr_factor
        config["learning_rate"] = value
        optimizer = self.optimizer_class.from_config(config)
        optimizer.build(self.model.trainable_variables)
        return optimizer, value

    def search_optimizer(self, optimizer: Any = None) -> tuple[Any, bool]:
        """The memory search's step: the compiled one, else a given or temporary optimizer."""
        if self.compiled:
            if optimizer is not None or self.user_loss is not None:
                warnings.warn(
                    "the Keras model is compiled: its own optimizer and loss are probed, "
                    "optimizer=/loss_fn= are ignored",
                    UserWarning,
                    stacklevel=3,
                )
            return COMPILED, False
        if optimizer is not None:
            return optimizer, False
        temporary = self.keras.optimizers.Adam()
        return temporary, True

    def _tape_step(self, optimizer: Any) -> Any:
        step = self._steps.get(id(optimizer))
        if step is not None:
            return step
        if self.keras.backend.backend() != "tensorflow":
            raise NotImplementedError(
                "training a Keras model with its own optimizer needs the TensorFlow backend "
                f"(KERAS_BACKEND=tensorflow); this Keras runs on {self.keras.backend.backend()!r}"
                " - compile the model to probe its own train step"
            )
        import tensorflow as tf

        model, mean_loss = self.model, self._mean_loss
        if not getattr(optimizer, "built", True):
            optimizer.build(model.trainable_variables)

        @tf.function(reduce_retracing=True)
        def step(x: Any, y: Any) -> Any:
            variables = model.trainable_variables
            with tf.GradientTape() as tape:
                loss = mean_loss(y, model(x, training=True))
                if model.losses:
                    loss = loss + tf.add_n(model.losses)
            grads = tape.gradient(loss, variables)
            optimizer.apply_gradients(zip(grads, variables, strict=True))
            return loss

        self._steps = {id(optimizer): step}  # one optimizer at a time: drop older traces
        return step

    def _mean_loss(self, y_true: Any, y_pred: Any) -> Any:
        loss_fn = self.loss_fn or self.keras.losses.MeanSquaredError()
        return self.keras.ops.mean(loss_fn(y_true, y_pred))

    def train_step(self, batch: Any, optimizer: Any, micro_batch_size: int | None = None) -> Any:
        """One optimizer step on ``(x, y)``; returns its loss (a tensor, or a float when compiled)."""
        if micro_batch_size is not None and self.batch_len(batch) > micro_batch_size:
            raise NotImplementedError("gradient accumulation is not supported by the Keras backend")
        x, y = batch
        if optimizer == COMPILED:
            return self.model.train_on_batch(x, y)
        return self._tape_step(optimizer)(x, y)

    def eval_step(self, batch: Any) -> Any:
        x, y = batch
        return self._mean_loss(y, self.model(x, training=False))

    def evaluate(self, data: Any) -> float:
        """Mean loss over ``(x_val, y_val)`` (per-sample weighted), ``training=False``."""
        x_val, y_val = data
        n = keras_data.n_rows(x_val)
        total = 0.0
        for start in range(0, n, EVAL_BATCH_SIZE):
            rows = slice(start, min(start + EVAL_BATCH_SIZE, n))
            loss = self.eval_step((keras_data.take(x_val, rows), keras_data.take(y_val, rows)))
            total += float(loss) * (rows.stop - rows.start)
        return total / n if math.isfinite(total) else float("nan")

    def zero_grad(self) -> None:
        return None  # Keras keeps no gradients between steps

    def forget_steps(self) -> None:
        """Drop the traced steps (they hold the optimizers they were traced with)."""
        self._steps = {}

    # -- state -----------------------------------------------------------------
    def snapshot(self, optimizers: Sequence[Any] = ()) -> KerasSnapshot:
        live = [o for o in optimizers if o is not None and o != COMPILED]
        if COMPILED in optimizers:
            live.append(self.model.optimizer)
        return KerasSnapshot.take(self.model, live)

    # -- memory ----------------------------------------------------------------
    def meter(self, target_bytes: int | None = None) -> Any:
        if self.gpu is not None:
            return TFDeviceMeter(self.gpu, target_bytes)
        return host_meter(target_bytes, self.resident_bytes)

    def memory_cap(self, target_bytes: int | None) -> contextlib.AbstractContextManager[Any]:
        return contextlib.nullcontext()  # the meter applies the target

    def is_oom(self, exc: BaseException) -> bool:
        return oom.is_oom_error(exc)

    def release(self, *objects: Any, full: bool = True) -> None:
        oom.release_memory(*objects, full=full)

    # -- host ------------------------------------------------------------------
    def to_host(self, values: Sequence[Any]) -> np.ndarray:
        return np.array([float(v) for v in values], dtype=np.float64)

    def synchronize(self, value: Any = None) -> None:
        if value is not None:
            float(value)  # a value is ready only when the step that made it has run

"""The Keras 3 probe: one real training step at a given batch size.

A compiled model is probed with ``model.train_on_batch`` — the same compiled
train function (XLA or not, as ``compile`` chose) that ``fit`` runs, so the
memory is the memory of the real run. An uncompiled model (TensorFlow
backend) gets a ``tf.function`` step with ``GradientTape``, the given loss
(mean squared error by default) and the given optimizer (Adam by default).

Readings: on a TensorFlow GPU, ``tf.config.experimental.get_memory_info``
(peak since ``reset_memory_stats``), with ``target_memory`` as the budget; on
the CPU, the host-process meter of :mod:`wandb_batchsize.memory.meters`.

TensorFlow's oneDNN CPU kernels abort the process (``std::bad_alloc``) when
the address space runs out instead of raising ``ResourceExhaustedError``;
set ``TF_ENABLE_ONEDNN_OPTS=0`` before importing TensorFlow where a CPU run
may hit its memory limit (the capped tests do).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from wandb_batchsize.memory.meters import Reading, host_meter
from wandb_batchsize.memory.oom import is_oom_error, release_memory, short_message
from wandb_batchsize.memory.search import ProbeOutcome
from wandb_batchsize.memory.state import KerasSnapshot


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


def _is_sparse_loss(loss: Any) -> bool:
    if loss is None:
        return False
    name = loss if isinstance(loss, str) else getattr(loss, "name", None) or type(loss).__name__
    if callable(loss) and not isinstance(loss, str) and name in ("function", None):
        name = getattr(loss, "__name__", "")
    return "sparse" in str(name).lower()


def _output_shapes(model: Any) -> list[tuple[int, ...]]:
    outputs = getattr(model, "outputs", None)
    if outputs:
        return [tuple(o.shape[1:]) for o in outputs]
    shape = model.output_shape
    if isinstance(shape, list):
        return [tuple(s[1:]) for s in shape]
    return [tuple(shape[1:])]


def _leading(obj: Any) -> int | None:
    if isinstance(obj, dict):
        obj = next(iter(obj.values()), None)
    if isinstance(obj, (list, tuple)):
        obj = obj[0] if obj else None
    shape = getattr(obj, "shape", None)
    return int(shape[0]) if shape is not None and len(shape) > 0 else None


def _tile(obj: Any, n: int, b: int) -> Any:
    if isinstance(obj, dict):
        return {k: _tile(v, n, b) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_tile(v, n, b) for v in obj)
    array = np.asarray(obj)
    if array.ndim == 0 or array.shape[0] != n:
        return array
    return array[np.arange(b) % n]


class KerasProbe:
    """Runs training steps of a Keras model at a given batch size (see module docstring)."""

    framework = "keras"

    def __init__(
        self,
        model: Any,
        *,
        sample: Any = None,
        input_shape: tuple[int, ...] | None = None,
        sample_fn: Callable[[int], Any] | None = None,
        optimizer: Any = None,
        loss_fn: Any = None,
        target_bytes: int | None = None,
        steps_per_probe: int = 1,
        eval_step: bool = False,
    ) -> None:
        import keras

        given = sum(x is not None for x in (sample, input_shape, sample_fn))
        if given != 1:
            raise ValueError(
                "give exactly one of: a sample batch, input_shape=(...) (per-sample shape), "
                f"or sample_fn=lambda batch_size: ...; got {given}"
            )
        self.keras = keras
        self.model = model
        self.steps_per_probe = max(1, int(steps_per_probe))
        self.eval_step = eval_step
        self.target_bytes = target_bytes
        self.compiled = (
            bool(getattr(model, "compiled", False))
            and getattr(model, "optimizer", None) is not None
        )
        self.loss = model.loss if self.compiled else loss_fn
        self._sample, self._input_shape, self._sample_fn = sample, input_shape, sample_fn
        self._rng = np.random.default_rng(0)  # never the global numpy RNG
        if not model.built:
            if input_shape is None:
                raise ValueError(
                    "the Keras model is not built yet: build it (call it once, or give it an "
                    "Input layer), or pass input_shape=(...)"
                )
            model.build((None, *input_shape))
        self.model_params = int(model.count_params())
        self.model_memory_bytes = self.model_params * 4 * 4  # the seed's estimate, float32
        if self.compiled:
            self.optimizer = model.optimizer
            if optimizer is not None or loss_fn is not None:
                import warnings

                warnings.warn(
                    "the Keras model is compiled: its own optimizer and loss are probed, "
                    "optimizer=/loss_fn= are ignored",
                    UserWarning,
                    stacklevel=3,
                )
        else:
            self.optimizer = optimizer
        self._owned_optimizer = self.optimizer is None
        self._step: Any = None
        gpus = []
        with contextlib.suppress(Exception):
            import tensorflow as tf

            gpus = tf.config.list_logical_devices("GPU")
        if gpus:
            self.device = "GPU:0"
            self.meter: Any = TFDeviceMeter("GPU:0", target_bytes)
        else:
            self.device = "cpu"
            resident = sum(int(np.prod(v.shape)) * 4 for v in model.weights)
            self.meter = host_meter(target_bytes, resident)

    @property
    def device_name(self) -> str:
        return f"keras/{self.keras.backend.backend()} {self.device}"

    # -- data ------------------------------------------------------------------
    def make_batch(self, b: int) -> tuple[Any, Any]:
        if self._sample_fn is not None:
            batch = self._sample_fn(b)
        elif self._sample is not None:
            n = _leading(self._sample)
            if not n:
                raise ValueError("the sample batch has no array with a batch dimension")
            batch = _tile(self._sample, n, b)
        else:
            x = self._rng.standard_normal((b, *self._input_shape), dtype=np.float32)
            return x, self._targets(b)
        if isinstance(batch, tuple) and len(batch) == 2:
            return batch
        return batch, self._targets(b)

    def _targets(self, b: int) -> Any:
        shapes = _output_shapes(self.model)
        sparse = _is_sparse_loss(self.loss)
        ys = [
            np.zeros((b, *s[:-1]), dtype=np.int32) if sparse else np.zeros((b, *s), np.float32)
            for s in shapes
        ]
        return ys[0] if len(ys) == 1 else ys

    # -- state -----------------------------------------------------------------
    @contextlib.contextmanager
    def preserved(self) -> Iterator[None]:
        """Snapshot the model's and optimizer's variables and the RNG; restore on any exit."""
        if self._owned_optimizer:
            self.optimizer = self.keras.optimizers.Adam()
        optimizers = [] if self._owned_optimizer else [self.optimizer]
        snapshot = KerasSnapshot.take(self.model, optimizers)
        if self._owned_optimizer:
            self.optimizer.build(self.model.trainable_variables)
        try:
            yield
        finally:
            try:
                snapshot.restore()
            finally:
                if self._owned_optimizer:
                    self.optimizer = None
                self._step = None
                del snapshot
                release_memory()

    def _make_step(self) -> Any:
        if self.compiled:

            def compiled_step(x: Any, y: Any) -> None:
                self.model.train_on_batch(x, y)

            return compiled_step
        if self.keras.backend.backend() != "tensorflow":
            raise ValueError(
                "an uncompiled Keras model can only be probed on the TensorFlow backend: "
                "compile it first (model.compile(optimizer=..., loss=...))"
            )
        import tensorflow as tf

        loss_fn = self.loss or self.keras.losses.MeanSquaredError()
        if isinstance(loss_fn, str):
            loss_fn = self.keras.losses.get(loss_fn)
        model, optimizer = self.model, self.optimizer

        @tf.function(reduce_retracing=True)
        def step(x: Any, y: Any) -> None:
            with tf.GradientTape() as tape:
                pred = model(x, training=True)
                loss = tf.reduce_mean(loss_fn(y, pred))
            grads = tape.gradient(loss, model.trainable_variables)
            optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=True))

        return step

    def _train_step(self, b: int) -> None:
        if self._step is None:
            self._step = self._make_step()
        x, y = self.make_batch(b)
        self._step(x, y)
        if self.eval_step:
            self.model(x, training=False)

    def __call__(self, batch_size: int) -> ProbeOutcome:
        error: str | None = None
        self.meter.start()
        try:
            for _ in range(self.steps_per_probe):
                self._train_step(batch_size)
        except Exception as exc:
            if not is_oom_error(exc):
                raise
            error = short_message(exc)
            release_memory(exc)
        reading = self.meter.stop()
        release_memory(full=False)
        over = self.meter.over_budget(reading)
        if error is None and over:
            error = "over target_memory"
        return ProbeOutcome(
            fitted=error is None,
            peak_bytes=reading.peak_bytes,
            headroom_bytes=reading.headroom_bytes,
            budget_bytes=reading.budget_bytes,
            error=error,
            complete=error is None or (over and error == "over target_memory"),
        )

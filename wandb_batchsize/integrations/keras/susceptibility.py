"""Keras ``SusceptibilityCallback``: batch-scale statistics of the per-step loss.

    model.fit(x, y, callbacks=[SusceptibilityCallback(check_every=500)])

Keras hands batch callbacks ``logs["loss"]``, the running mean of the loss over
the epoch so far, not the loss of the batch. The callback records the raw value
instead, inside the training step: Keras feeds the loss of every step to its
loss tracker (``model._loss_tracker.update_state(loss, ...)``, the metric behind
``logs["loss"]``), and for the duration of ``fit`` the callback wraps that call
so that it also writes the loss into a small device-side ring buffer (a Keras
variable) before updating the tracker. The buffer is read in one transfer at
each check (from ``on_train_batch_begin``, which receives no logs), so the
callback adds no per-step host-device synchronisation and leaves Keras'
asynchronous batch-callback dispatch on; with ``steps_per_execution > 1`` every
step is still recorded. Losses of validation batches are not recorded.

Where the tracker cannot be wrapped (the JAX backend, whose compiled steps are
stateless, or a model without ``_loss_tracker``), or with ``capture="logs"``, the
per-batch values are recovered from the running mean instead:
``loss_b = b * mean_b - (b - 1) * mean_{b-1}`` for the b-th batch of an epoch
(exact for equal batches up to float32 rounding of the mean; the last, smaller
batch of an epoch is off by its weight).

W&B: ``wandb.run`` (e.g. from ``wandb.init`` with ``WandbMetricsLogger``),
logged against the optimizer's iteration count. The final result goes to the
run summary in ``on_train_end``.
"""

from __future__ import annotations

import warnings
from typing import Any, ClassVar

import keras
import numpy as np

from wandb_batchsize.monitor.api import MonitorAPI
from wandb_batchsize.monitor.defaults import FLUSH_EVERY

__all__ = ["SusceptibilityCallback"]

_CAPTURES = ("auto", "tracker", "logs")


class _TrackerRecorder:
    """Wraps ``model._loss_tracker.update_state`` to also write each training loss
    into a device ring buffer; read on the host in one transfer per flush."""

    def __init__(self, model: Any, capacity: int) -> None:
        self.model = model
        self.capacity = int(capacity)
        self.tracker = model._loss_tracker
        self.active = True  # a Python flag: read when the step is traced (or run eagerly)
        self.buffer = keras.Variable(
            np.zeros(self.capacity, dtype="float32"),
            dtype="float32",
            trainable=False,
            name="wandb_batchsize_losses",
        )
        self.count = keras.Variable(0, dtype="int64", trainable=False, name="wandb_batchsize_count")
        self.read_upto = 0
        self.lost = 0
        original = self.tracker.update_state
        self._original = original
        recorder = self

        def update_state(values: Any, sample_weight: Any = None) -> Any:
            if recorder.active:
                recorder._write(values)
            return original(values, sample_weight=sample_weight)

        self.tracker.update_state = update_state

    def _write(self, values: Any) -> None:
        ops = keras.ops
        value = ops.reshape(ops.mean(ops.cast(ops.stop_gradient(values), "float32")), (1,))
        index = ops.reshape(ops.mod(self.count.value, self.capacity), (1,))
        self.buffer.assign(ops.slice_update(self.buffer.value, index, value))
        self.count.assign(self.count.value + 1)

    def read(self) -> np.ndarray:
        """The losses written since the last read, oldest first (one device read each)."""
        count = int(keras.ops.convert_to_numpy(self.count.value))
        new = count - self.read_upto
        if new <= 0:
            return np.empty(0)
        buffer = np.asarray(keras.ops.convert_to_numpy(self.buffer.value), dtype=np.float64)
        if new > self.capacity:  # cannot happen with the read schedule; never silent
            self.lost += new - self.capacity
            new = self.capacity
        start = (count - new) % self.capacity
        idx = (start + np.arange(new)) % self.capacity
        self.read_upto = count
        return buffer[idx]

    def remove(self) -> None:
        if self.tracker.__dict__.get("update_state") is not None:
            del self.tracker.update_state


class SusceptibilityCallback(MonitorAPI, keras.callbacks.Callback):
    """``keras.callbacks.Callback``: check the susceptibility every ``check_every`` steps.

    Parameters as :class:`wandb_batchsize.SusceptibilityMonitor`: ``check_every``,
    ``window``, ``detrend``, ``log_to_wandb`` and the options ``prefix``,
    ``chart_preset``, ``log_charts``, ``max_history``, ``run`` and analysis
    parameters; plus ``capture``: ``"auto"`` (the loss tracker where possible),
    ``"tracker"`` or ``"logs"`` (recovery from the running mean). ``result()`` and
    ``history`` as there.
    """

    ADAPTER_OPTIONS: ClassVar[dict[str, Any]] = {"capture": "auto"}

    def _setup(self) -> None:
        capture = self.capture
        if capture not in _CAPTURES:
            raise ValueError(f"capture must be one of {_CAPTURES}, got {capture!r}")
        self._recorder: _TrackerRecorder | None = None
        self._host_steps = 0  # steps started since the last read, as estimated on the host
        self._batches = 0
        self._next_read = 0
        self._use_logs = capture == "logs" or (
            capture == "auto" and keras.backend.backend() == "jax"
        )
        if self._use_logs:
            # Only now is a batch-end hook defined: Keras then dispatches batch
            # callbacks synchronously, which the running mean needs.
            self.on_train_batch_end = self._recover_from_logs
        self._prev_mean, self._prev_batches = 0.0, 0

    # -- the recorder ------------------------------------------------------------

    def _spe(self) -> int:
        return max(1, int(getattr(self.model, "steps_per_execution", 1) or 1))

    def on_train_begin(self, logs: Any = None) -> None:
        self._core.start()
        if self._use_logs:
            return
        model = self.model
        if getattr(model, "_loss_tracker", None) is None:
            if self.capture == "tracker":
                raise RuntimeError(
                    "SusceptibilityCallback(capture='tracker'): the model has no loss tracker; "
                    "compile it with a loss, or use capture='logs'"
                )
            warnings.warn(
                "SusceptibilityCallback: this Keras model has no loss tracker to read the "
                "per-step loss from; nothing will be recorded (use capture='logs').",
                RuntimeWarning,
                stacklevel=2,
            )
            return
        spe = self._spe()
        interval = min(self.check_every, FLUSH_EVERY)
        self._recorder = _TrackerRecorder(model, capacity=2 * (interval + spe) + 16)
        # The training step is traced on first use: rebuild it so that a step
        # traced by an earlier fit (without the recorder) is not reused.
        model.make_train_function(force=True)
        self._host_steps = 0
        self._batches = 0
        self._next_read = min(self._core.steps_to_next_check(), interval)

    def on_train_batch_begin(self, batch: int, logs: Any = None) -> None:
        if self._recorder is None:
            return
        self._batches += 1
        if self._host_steps >= self._next_read:
            self._read()
        self._host_steps += self._spe()

    def _read(self) -> None:
        recorder = self._recorder
        if recorder is None:
            return
        values = recorder.read()
        if recorder.lost:
            self._core.warn_once(
                "lost", f"{type(self).__name__}: {recorder.lost} step losses were overwritten"
            )
        step = int(keras.ops.convert_to_numpy(self.model.optimizer.iterations))
        self._core.record_many(values, step=step)
        self._host_steps = 0
        self._next_read = min(self._core.steps_to_next_check(), min(self.check_every, FLUSH_EVERY))

    def on_test_begin(self, logs: Any = None) -> None:
        if self._recorder is not None:
            self._recorder.active = False

    def on_test_end(self, logs: Any = None) -> None:
        if self._recorder is not None:
            self._recorder.active = True

    def on_train_end(self, logs: Any = None) -> None:
        step = None
        if self._recorder is not None:
            self._read()
            if self._batches and self._recorder.read_upto == 0:
                self._core.warn_once(
                    "nothing",
                    f"{type(self).__name__}: no training loss reached Keras' loss tracker "
                    "(a custom train_step?); nothing was recorded. Use capture='logs'.",
                )
            self._recorder.remove()
            self._recorder = None
            # the traced step still writes to the recorder's buffer: drop it, so
            # that a later fit without this callback traces a clean one
            self.model.train_function = None
        try:
            step = int(keras.ops.convert_to_numpy(self.model.optimizer.iterations))
        except Exception:  # noqa: BLE001 - the step is only a label
            step = None
        self._core.finish(step)

    # -- fallback: recover the batch losses from the running mean -----------------

    def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
        self._prev_mean, self._prev_batches = 0.0, 0

    def _recover_from_logs(self, batch: int, logs: Any = None) -> None:
        if not logs or "loss" not in logs:
            return
        mean = float(logs["loss"])
        b = int(batch) + 1  # batches of this epoch so far (the last of this execution)
        done = b - self._prev_batches
        if done <= 0:
            return
        # the mean of the batches since the last call: one value per step, or per
        # execution with steps_per_execution > 1
        value = (b * mean - self._prev_batches * self._prev_mean) / done
        self._prev_mean, self._prev_batches = mean, b
        self._core.record(value)

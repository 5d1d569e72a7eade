"""Snapshot and bitwise restore of a Keras model's state, in memory (never on disk).

:class:`KerasSnapshot` copies every variable of the model and of its
optimizers (weights, batch-norm statistics, metric accumulators, the seed
states of dropout layers), the layers' ``trainable`` flags and the Python,
NumPy and TensorFlow global RNG states; ``restore()`` assigns them back
bitwise.
"""

from __future__ import annotations

import contextlib
import sys
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from wandb_batchsize.backends.base import host_rng_state, restore_host_rng


@dataclass
class KerasSnapshot:
    """All variables of a Keras model and of its optimizer, plus the RNG streams.

    ``model.variables`` covers weights, non-trainable state (batch-norm moving
    statistics), metric accumulators and the seed-generator states of dropout
    layers. An optimizer that was not built yet is built first (with the
    initial values ``fit`` would give it) so that its variables can be restored.
    """

    variables: list[tuple[Any, Any]] = field(default_factory=list)
    trainable: list[tuple[Any, bool]] = field(default_factory=list)
    host_rng: Any = None
    tf_rng: Any = None

    @classmethod
    def take(cls, model: Any, optimizers: list[Any] = ()) -> KerasSnapshot:
        snap = cls()
        seen: set[int] = set()
        live = list(model.variables)
        with contextlib.suppress(Exception):  # a model without compiled metrics has none
            live.extend(model.metrics_variables)  # compiled metrics' accumulators
        for opt in optimizers:
            if opt is None:
                continue
            if not getattr(opt, "built", True):
                opt.build(model.trainable_variables)
            live.extend(opt.variables)
        for var in live:
            if id(var) in seen:
                continue
            seen.add(id(var))
            snap.variables.append((var, np.array(var.numpy(), copy=True)))
        snap.trainable = [(layer, layer.trainable) for layer in _layers(model)]
        snap.host_rng = host_rng_state()
        generator = _tf_global_generator()
        if generator is not None:
            snap.tf_rng = (generator, generator.state.numpy().copy())
        return snap

    def restore(self) -> None:
        for var, value in self.variables:
            var.assign(value)
        for layer, flag in self.trainable:
            if layer.trainable != flag:
                layer.trainable = flag
        restore_host_rng(self.host_rng)
        if self.tf_rng is not None:
            generator, state = self.tf_rng
            generator.state.assign(state)


def _tf_global_generator() -> Any:
    """TensorFlow's global ``tf.random.Generator`` if one was created, else None (none is made)."""
    module = sys.modules.get("tensorflow.python.ops.stateful_random_ops")
    return None if module is None else getattr(module, "global_generator", None)


def _layers(model: Any) -> list[Any]:
    try:
        return [model, *model._flatten_layers(include_self=False)]
    except Exception:  # noqa: BLE001 - a model without nested layers
        return [model]

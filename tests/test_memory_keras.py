"""Keras models: the seed-compatible call, and the state restored after the search.

OOMs here come from a simulated budget (a layer that raises TensorFlow's
``ResourceExhaustedError`` above a size); the real allocator failures are in
test_memory_capped.py.
"""

from __future__ import annotations

import random

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")

from wandb_batchsize.keras import calculate_adjusted_epochs, find_optimal_batch_size  # noqa: E402
from wandb_batchsize.memory import find_batch_size  # noqa: E402


class Budget(keras.layers.Layer):
    """Raises TF's OOM error above ``limit`` samples (eagerly, like an allocator would)."""

    def __init__(self, limit, **kwargs):
        super().__init__(**kwargs)
        self.limit = limit

    def call(self, x):
        def check(n):
            if int(n) > self.limit:  # TF turns a MemoryError in py_func into RESOURCE_EXHAUSTED
                raise MemoryError(f"OOM when allocating tensor with shape[{int(n)},64]")
            return np.int32(0)

        flag = tf.numpy_function(check, [tf.shape(x)[0]], tf.int32, stateful=True)
        return x + tf.cast(tf.reshape(flag, []), x.dtype)

    def compute_output_shape(self, input_shape):
        return input_shape


def make(limit, compiled=True):
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((12,)),
            keras.layers.Dense(32, activation="relu"),
            keras.layers.BatchNormalization(),
            keras.layers.Dropout(0.2),
            Budget(limit),
            keras.layers.Dense(3),
        ]
    )
    if compiled:
        model.compile(
            optimizer=keras.optimizers.Adam(1e-2),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        )
    return model


def values(model):
    out = [v.numpy().copy() for v in model.variables]
    if getattr(model, "optimizer", None) is not None and model.optimizer.built:
        out += [v.numpy().copy() for v in model.optimizer.variables]
    return out


def test_seed_call_returns_an_int_and_prints_the_table(capsys):
    model = make(limit=96)
    x = np.random.default_rng(0).standard_normal((16, 12)).astype("float32")
    model.fit(x, np.zeros(16, "int32"), epochs=1, verbose=0)  # a trained optimizer to restore
    before = values(model)
    np_state, py_state = np.random.get_state(), random.getstate()
    bs = find_optimal_batch_size(model, (12,), max_batch_size=512, log_to_wandb=False)
    assert isinstance(bs, int) and bs == 80  # 94..96 fit; x0.9 = 84..86; multiple of 8
    out = capsys.readouterr().out
    for text in ("Batch size finder (keras", "model parameters:", "estimated model memory:"):
        assert text in out
    assert "✓" in out and "✗ OOM" in out and "binary search:" in out
    assert "optimal batch size" in out
    after = values(model)
    assert len(before) == len(after)
    assert all(np.array_equal(a, b) for a, b in zip(before, after, strict=True))  # bitwise
    assert np.array_equal(np.random.get_state()[1], np_state[1])
    assert random.getstate() == py_state


def test_result_of_the_general_call_on_keras():
    model = make(limit=200)
    result = find_batch_size(model, input_shape=(12,), verbose=False, log_to_wandb=False)
    assert result.max_fitting <= 200 < result.first_failing
    assert 200 - result.max_fitting <= 0.03 * 200
    assert result.framework == "keras" and result.model_params == model.count_params()
    assert result.model_memory_mb == pytest.approx(model.count_params() * 16 / 2**20)


def test_uncompiled_model_and_errors_propagate():
    model = make(limit=10_000, compiled=False)
    before = values(model)
    result = find_batch_size(
        model, input_shape=(12,), max_batch_size=64, verbose=False, log_to_wandb=False
    )
    assert result.max_fitting == 64 and result.first_failing is None
    assert all(np.array_equal(a, b) for a, b in zip(before, values(model), strict=True))
    assert getattr(model, "optimizer", None) is None  # nothing was compiled into the user's model

    boom = ValueError("bad input pipeline")

    def sample_fn(b):
        if b > 8:
            raise boom
        return np.zeros((b, 12), "float32"), np.zeros((b, 3), "float32")

    with pytest.raises(ValueError) as info:
        find_batch_size(model, sample_fn=sample_fn, verbose=False, log_to_wandb=False)
    assert info.value is boom
    assert all(np.array_equal(a, b) for a, b in zip(before, values(model), strict=True))


def test_calculate_adjusted_epochs_is_importable_from_the_seed_module():
    assert calculate_adjusted_epochs(100, 256, 64) == 400
    assert calculate_adjusted_epochs(10, 256, 1024) == 50


@pytest.mark.parametrize(
    "option, match",
    [
        ({"step_fn": lambda m, b, o: 0.0}, "step_fn is a PyTorch option"),
        ({"precision": "bf16"}, "set_global_policy"),
    ],
)
def test_torch_only_options_are_a_clear_error_on_keras(option, match):
    with pytest.raises(NotImplementedError, match=match):
        find_batch_size(make(limit=100), input_shape=(12,), log_to_wandb=False, **option)

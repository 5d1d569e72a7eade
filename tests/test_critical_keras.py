"""measure_critical_batch on a Keras model, through KerasBackend (TensorFlow backend)."""

from __future__ import annotations

import math

import numpy as np
import pytest

keras = pytest.importorskip("keras")
pytest.importorskip("tensorflow")

import wandb_batchsize as wbs  # noqa: E402

D = 15


def test_keras_linear_regression_and_bitwise_restore():
    if keras.backend.backend() != "tensorflow":
        pytest.skip("KerasBackend trains with its own optimizer only on the TensorFlow backend")
    rng = np.random.default_rng(0)
    w_star = rng.normal(size=(D, 1)).astype("float32")
    x = rng.normal(size=(4096, D)).astype("float32")
    data = (x, x @ w_star)
    x_val = (np.eye(D) * math.sqrt(D)).astype("float32")
    model = keras.Sequential([keras.Input((D,)), keras.layers.Dense(1, use_bias=False)])
    model.layers[0].kernel.assign(np.zeros((D, 1), "float32"))
    before = [w.copy() for w in model.get_weights()]
    result = wbs.measure_critical_batch(
        model,
        data,
        "mse",
        lr=1 / 64,
        reference_batch=2,
        max_batch_size=64,
        val_data=(x_val, x_val @ w_star),
        target=float((w_star**2).sum()) / 100,
        max_steps=400,
        repeats=1,
        log_to_wandb=False,
        verbose=False,
    )
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights(), strict=True))
    assert result.optimizer_kind == "sgd" and result.batch_sizes[0] == 2
    # noiseless regression: B_noise = d + 1 = 16 (MSE doubles the curvature, not B_noise)
    assert 16 / 2 <= result.B_crit <= 16 * 3, result.summary()

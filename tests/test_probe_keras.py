"""Real Keras 3 (TensorFlow) probes on generated data, CPU."""

from __future__ import annotations

import random

import numpy as np
import pytest

keras = pytest.importorskip("keras")
pytest.importorskip("tensorflow")

from wandb_batchsize.probe.keras_probe import probe_batch_sizes  # noqa: E402

SIZES = [8, 16, 32, 64]


def make_data(n: int = 512, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 6)).astype("float32")
    y = (x @ rng.normal(size=(6, 1)) + 0.3 * rng.normal(size=(n, 1))).astype("float32")
    return x, y


def make_model(compiled: bool = True):
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((6,)),
            keras.layers.Dense(16, activation="tanh"),
            keras.layers.Dropout(0.2),
            keras.layers.BatchNormalization(),
            keras.layers.Dense(1),
        ]
    )
    if compiled:
        model.compile(optimizer=keras.optimizers.SGD(0.05), loss="mse", metrics=["mae"])
    return model


def test_variables_compile_state_and_rng_are_restored_bitwise():
    x, y = make_data()
    model = make_model()
    model.fit(x, y, batch_size=64, epochs=1, verbose=0)  # a trained optimizer to leave alone
    variables = [np.array(v.numpy(), copy=True) for v in model.variables]
    opt_vars = [np.array(v.numpy(), copy=True) for v in model.optimizer.variables]
    optimizer = model.optimizer
    random.seed(3)
    np.random.seed(4)
    rng = (random.getstate(), np.random.get_state())

    result = probe_batch_sizes(
        model, x, y, batch_sizes=SIZES, steps_per_size=4, repeats=2, verbose=False,
        log_to_wandb=False,
    )  # fmt: skip

    assert result.sweep is not None
    after = [v.numpy() for v in model.variables]  # weights, BN statistics, dropout seed state
    assert all(np.array_equal(a, b) for a, b in zip(after, variables, strict=True))
    assert model.optimizer is optimizer
    assert all(
        np.array_equal(v.numpy(), s)
        for v, s in zip(model.optimizer.variables, opt_vars, strict=True)
    )
    assert random.getstate() == rng[0]
    assert all(np.array_equal(a, b) for a, b in zip(np.random.get_state(), rng[1], strict=True))
    # the model still trains as compiled
    model.fit(x, y, batch_size=64, epochs=1, verbose=0)


def test_equal_samples_repeats_and_validation_metric():
    x, y = make_data()
    xv, yv = make_data(128, seed=1)
    result = probe_batch_sizes(
        make_model(), x, y, batch_sizes=SIZES, steps_per_size=4, repeats=2, seed=3,
        validation_data=(xv, yv), verbose=False, log_to_wandb=False, n_bootstrap=100,
    )  # fmt: skip
    rows = result.table()
    assert result.framework == "keras" and result.metric == "val_loss"
    assert {r["samples"] for r in rows} == {4 * 64}
    assert [r["steps"] for r in rows if r["repeat"] == 0] == [32, 16, 8, 4]
    assert {r["seed"] for r in rows} == {3, 4}
    assert all(r["metric"] == r["val_loss"] > 0 for r in rows)
    assert list(result.sweep.counts) == [2] * 4
    low, high = result.sweep.K_c_interval
    assert low <= result.K_c <= high


def test_uncompiled_model_needs_a_loss_and_lr_scaling_uses_the_optimizer_config():
    x, y = make_data()
    model = make_model(compiled=False)
    with pytest.raises(ValueError, match="no loss"):
        probe_batch_sizes(model, x, y, batch_sizes=SIZES, verbose=False)
    result = probe_batch_sizes(
        model, x, y, batch_sizes=SIZES, budget="steps", steps_per_size=3, loss="mse",
        optimizer=keras.optimizers.Adam(0.01), lr_scaling="sqrt", verbose=False,
        log_to_wandb=False,
    )  # fmt: skip
    assert [r.lr for r in result.records] == pytest.approx(
        [0.01, 0.01 * 2**0.5, 0.02, 0.02 * 2**0.5]
    )
    assert [r.samples for r in result.records] == [3 * b for b in SIZES]

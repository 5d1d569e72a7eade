"""Keras SusceptibilityCallback: the per-batch loss, not the running epoch mean."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import fast_settings, run_dir_of

keras = pytest.importorskip("keras")

from wandb_batchsize.integrations.keras import SusceptibilityCallback  # noqa: E402
from wandb_batchsize.tracking.offline import read_run  # noqa: E402

BATCH = 16


def _data(n: int = 1600):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 8)).astype("float32")
    y = (x @ rng.normal(size=(8, 1)) + 0.5 * rng.normal(size=(n, 1))).astype("float32")
    return x, y


def _model(lr: float, *, loss="mse", **compile_kwargs):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(lr), loss=loss, **compile_kwargs)
    return model


def test_compiled_steps_record_each_batch_loss_and_skip_validation(wandb_env):
    """lr=0 keeps the weights fixed, so each batch's loss can be recomputed exactly."""
    import wandb

    x, y = _data()
    model = _model(0.0, steps_per_execution=2)
    callback = SusceptibilityCallback(check_every=50, window=1000, max_overhead=None)
    run = wandb.init(project="monitor-keras", settings=fast_settings())
    history = model.fit(
        x,
        y,
        batch_size=BATCH,
        epochs=2,
        shuffle=False,
        verbose=0,
        validation_data=(x[:64], y[:64]),
        callbacks=[callback],
    )
    run.finish()

    pred = model.predict(x, batch_size=256, verbose=0)
    per_batch = ((pred - y) ** 2).reshape(-1, BATCH).mean(axis=1)  # 100 batches per epoch
    np.testing.assert_allclose(callback.values(), np.tile(per_batch, 2), rtol=1e-5)
    assert callback.n_steps == 200  # validation batches were not recorded
    # logs["loss"] (the running mean) is not what was analysed
    assert history.history["loss"][0] == pytest.approx(per_batch.mean(), rel=1e-5)
    assert callback.history_steps == [50, 100, 150, 200]

    logged = read_run(run_dir_of(run))
    assert logged.history_of("susceptibility/step") == [50, 100, 150, 200]
    for key in ("K_c", "kappa", "alpha", "tau_int", "p_iid", "significant"):
        assert len(logged.history_of(f"susceptibility/{key}")) == 4, key
    final = callback.result()
    assert logged.summary["susceptibility/final/K_c"] == final.K_c
    assert len(logged.table("susceptibility/chi_chart_table")["data"]) == len(final.K_values)
    # the loss tracker is Keras' own again after fit
    assert "update_state" not in vars(model._loss_tracker)


def test_eager_training_matches_the_losses_really_computed():
    computed: list[float] = []

    def loss(y_true, y_pred):
        value = keras.ops.mean(keras.ops.square(y_true - y_pred))
        computed.append(float(value))
        return value

    x, y = _data(800)
    model = _model(0.05, loss=loss, run_eagerly=True)
    callback = SusceptibilityCallback(check_every=40, window=500, log_to_wandb=False)
    model.fit(x, y, batch_size=BATCH, epochs=2, shuffle=True, verbose=0, callbacks=[callback])
    np.testing.assert_allclose(callback.values(), computed, rtol=1e-6)
    assert callback.result().n == 100


def test_running_mean_recovery_is_the_fallback():
    x, y = _data(800)
    model = _model(0.0)
    callback = SusceptibilityCallback(
        check_every=40, window=500, log_to_wandb=False, capture="logs"
    )
    model.fit(x, y, batch_size=BATCH, epochs=2, shuffle=False, verbose=0, callbacks=[callback])
    pred = model.predict(x, batch_size=256, verbose=0)
    per_batch = ((pred - y) ** 2).reshape(-1, BATCH).mean(axis=1)
    np.testing.assert_allclose(callback.values(), np.tile(per_batch, 2), rtol=1e-3, atol=1e-4)
    with pytest.raises(ValueError, match="capture"):
        SusceptibilityCallback(capture="batch")


@pytest.mark.filterwarnings("ignore:.*only 0 finite step losses")
def test_a_train_step_that_bypasses_the_loss_tracker_is_reported():
    class OwnStep(keras.Sequential):
        def train_step(self, data):
            return {"done": 1.0}  # never feeds Keras' loss tracker

    keras.utils.set_random_seed(0)
    model = OwnStep([keras.Input((8,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    x, y = _data(160)
    callback = SusceptibilityCallback(check_every=5, window=100, log_to_wandb=False)
    with pytest.warns(RuntimeWarning, match="capture='logs'"):
        model.fit(x, y, batch_size=BATCH, epochs=1, verbose=0, callbacks=[callback])
    assert callback.n_steps == 0

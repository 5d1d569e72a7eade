"""Watch the batch-scale statistics of ``model.fit`` on the W&B dashboard (Keras 3).

    python examples/keras_monitor.py              # offline run, CPU, ~20 s

Keras hands batch callbacks only the running mean of the epoch's loss;
``SusceptibilityCallback`` records the loss of every batch inside the training
step instead (no extra host-device synchronisation) and analyses that. It logs
``susceptibility/*`` against ``susceptibility/step`` (the optimizer's iteration
count) and chi(K) / V(K) charts next to what ``WandbMetricsLogger`` logs.

W&B runs offline unless you set ``WANDB_MODE`` yourself; the script prints the
run folder and the ``wandb sync`` command that uploads it.
"""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import wandb  # noqa: E402
from wandb.integration.keras import WandbMetricsLogger  # noqa: E402

from wandb_batchsize.integrations.keras import SusceptibilityCallback  # noqa: E402

EPOCHS, BATCH = 6, 32


def make_data(n: int = 16384, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian inputs, labels sampled from a random teacher's softmax (4 classes)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 16)).astype("float32")
    logits = 2 * x @ rng.normal(size=(16, 4))
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    y = (rng.random((n, 1)) < p.cumsum(axis=1)).argmax(axis=1)
    return x, y


def main() -> None:
    keras.utils.set_random_seed(0)
    x, y = make_data()
    model = keras.Sequential(
        [keras.Input((16,)), keras.layers.Dense(64, activation="relu"), keras.layers.Dense(4)]
    )
    model.compile(
        optimizer=keras.optimizers.SGD(0.05),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    run = wandb.init(
        project="wandb-batchsize-examples",
        name="keras-monitor",
        config={"batch_size": BATCH, "lr": 0.05},
    )
    # Streaming over every step; checks every 500 steps whatever they cost (the
    # default cap, 0.8 % of the training time, would space them out on a toy model).
    monitor = SusceptibilityCallback(check_every=500, max_overhead=None)
    model.fit(
        x,
        y,
        batch_size=BATCH,
        epochs=EPOCHS,
        verbose=0,
        validation_split=0.1,
        callbacks=[monitor, WandbMetricsLogger(log_freq=100)],
    )

    print(monitor.result().summary())
    print(f"checks at steps {monitor.history_steps}")
    where = Path(run.dir).parent
    run.finish()
    if run.settings.mode == "offline":
        print(f"offline run: {where}\nupload it with: wandb sync {where}")


if __name__ == "__main__":
    main()

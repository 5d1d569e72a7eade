"""The seed's Keras call, ``find_optimal_batch_size``, logged to an offline W&B run.

    python examples/keras_find_batch_size.py       # offline run, CPU, ~30 s

``find_optimal_batch_size(model, input_shape)`` returns an ``int`` and prints
the progress table; with a run active it records ``batch_size``,
``batch_size_source="dynamic_finder"`` and ``batch_finder/*`` on it.
``calculate_adjusted_epochs`` is the seed's epoch rule (see its docstring for
what it does and does not preserve).

On a GPU the ceiling is the device's memory; on this CPU demo a memory target
(``--target``, default 256 MiB) stands in for a small device. W&B runs offline
unless you set ``WANDB_MODE`` yourself; the script prints the run folder and
the ``wandb sync`` command that uploads it.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# TensorFlow's oneDNN CPU kernels keep freed memory in a pool of their own, so the
# process's resident size (the CPU reading) would not fall between probes.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import wandb  # noqa: E402

from wandb_batchsize.keras import calculate_adjusted_epochs, find_optimal_batch_size  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", default="256MiB", help="memory budget, e.g. 16GiB")
    args = parser.parse_args()

    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((32, 32, 3)),
            keras.layers.Conv2D(32, 3, padding="same", activation="relu"),
            keras.layers.MaxPooling2D(),
            keras.layers.Conv2D(64, 3, padding="same", activation="relu"),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(10),
        ]
    )
    model.compile(
        optimizer="adam",
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )

    run = wandb.init(project="wandb-batchsize-examples", job_type="keras-find-batch-size")
    batch_size = find_optimal_batch_size(
        model, input_shape=(32, 32, 3), max_batch_size=1024, target_memory=args.target
    )
    epochs = calculate_adjusted_epochs(100, reference_batch=256, actual_batch=batch_size)
    print(
        f"batch size {batch_size}; the seed's rule asks for {epochs} epochs (reference 100 at 256)"
    )

    rng = np.random.default_rng(0)
    x = rng.standard_normal((4 * batch_size, 32, 32, 3)).astype("float32")
    y = rng.integers(0, 10, len(x))
    history = model.fit(x, y, batch_size=batch_size, epochs=1, verbose=0)
    run.log({"train/loss": history.history["loss"][-1]})
    run_dir = Path(run.dir).parent
    run.finish()
    print(f"W&B run folder: {run_dir}")
    if os.environ.get("WANDB_MODE") == "offline":
        print(f"upload it with: wandb sync {run_dir}")


if __name__ == "__main__":
    main()

"""The models the memory-search benchmark (and the capped tests) train under a real cap.

Each task has ``model``, ``optimizer``, ``sample`` (what ``find_batch_size``
gets), ``batch(b)``, ``loss(batch)``, ``item(i)`` (one sample, for
Lightning's data loader), ``step(b)`` (one full training step), and its own
OOM test and release, independent of the library's (``is_oom``, ``release``).
"""

from __future__ import annotations

import gc

SEQ, FEATURES, HIDDEN = 32, 16, 1024


class TorchTask:
    """A token-wise MLP (32 tokens x 16 features -> 1024 -> 10, mean over tokens).

    Activations dominate its memory (about 0.6 MiB a sample against 0.1 MiB of
    weights): the CPU snapshot of weights and optimizer state that the search
    holds is negligible next to the cap.
    """

    name = "token MLP"

    def __init__(self) -> None:
        import torch
        from torch import nn

        torch.manual_seed(0)
        torch.set_num_threads(1)
        self.torch, self.nn = torch, nn
        self.model = self.build()
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=1e-3)
        self.sample = self.batch(8)

    def build(self):
        nn = self.nn

        class TokenMLP(nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.body = nn.Sequential(
                    nn.Linear(FEATURES, HIDDEN), nn.GELU(), nn.Dropout(0.1), nn.Linear(HIDDEN, 10)
                )

            def forward(self, x):
                return self.body(x).mean(dim=1)

        return TokenMLP()

    def batch(self, b: int):
        g = self.torch.Generator().manual_seed(b)
        return (
            self.torch.randn(b, SEQ, FEATURES, generator=g),
            self.torch.randint(0, 10, (b,), generator=g),
        )

    def item(self, i: int):
        x, y = self.batch(1)
        return x[0], y[0]

    def loss(self, batch):
        x, y = batch
        return self.nn.functional.cross_entropy(self.model(x), y)

    def step(self, b: int) -> None:
        self.loss(self.batch(b)).backward()
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)

    def is_oom(self, exc: BaseException) -> bool:
        # independent of our table: the CPU allocator's and oneDNN's own wordings
        text = str(exc).strip()
        return isinstance(exc, RuntimeError) and (
            "can't allocate memory" in text or text == "could not create a primitive"
        )

    def release(self) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        gc.collect()


class ConvAttentionTask(TorchTask):
    """A conv + attention model on 16x16 images (two convs, 64 tokens of 64, 4 heads)."""

    name = "conv + attention"

    def build(self):
        nn = self.nn

        class ConvAttention(nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.conv = nn.Sequential(
                    nn.Conv2d(3, 32, 3, padding=1),
                    nn.ReLU(),
                    nn.Conv2d(32, 64, 3, padding=1, stride=2),
                    nn.ReLU(),
                )
                self.attn = nn.MultiheadAttention(64, 4, batch_first=True)
                self.head = nn.Linear(64, 10)

            def forward(self, x):
                t = self.conv(x).flatten(2).transpose(1, 2)
                a, _ = self.attn(t, t, t)
                return self.head((t + a).mean(1))

        return ConvAttention()

    def batch(self, b: int):
        g = self.torch.Generator().manual_seed(b)
        return (
            self.torch.randn(b, 3, 16, 16, generator=g),
            self.torch.randint(0, 10, (b,), generator=g),
        )


class CNNTask(ConvAttentionTask):
    """A small CNN on 32x32 images (3 -> 16 -> 32 -> 64 channels, BatchNorm, pooling)."""

    name = "small CNN"

    def build(self):
        nn = self.nn

        def block(cin: int, cout: int):
            return [nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU()]

        return nn.Sequential(
            *block(3, 16),
            nn.MaxPool2d(2),
            *block(16, 32),
            nn.MaxPool2d(2),
            *block(32, 64),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(64, 10),
        )

    def batch(self, b: int):
        g = self.torch.Generator().manual_seed(b)
        return (
            self.torch.randn(b, 3, 32, 32, generator=g),
            self.torch.randint(0, 10, (b,), generator=g),
        )


GPT2_SEQ = 64


class GPT2Task(TorchTask):
    """A tiny GPT-2 from ``transformers.GPT2Config`` (2 layers, 2 heads, 64 wide, 64 tokens)."""

    name = "tiny GPT-2"

    def build(self):
        from transformers import GPT2Config, GPT2LMHeadModel

        config = GPT2Config(
            vocab_size=1000,
            n_positions=GPT2_SEQ,
            n_embd=64,
            n_layer=2,
            n_head=2,
            attn_implementation="eager",
        )
        return GPT2LMHeadModel(config)

    def batch(self, b: int):
        g = self.torch.Generator().manual_seed(b)
        ids = self.torch.randint(0, 1000, (b, GPT2_SEQ), generator=g)
        return {"input_ids": ids, "labels": ids}

    def item(self, i: int):
        batch = self.batch(1)
        return {k: v[0] for k, v in batch.items()}

    def loss(self, batch):
        return self.model(**batch).loss


class KerasTask:
    """The token-wise MLP in Keras, compiled with Adam."""

    name = "token MLP"

    def __init__(self) -> None:
        import keras
        import numpy as np
        import tensorflow as tf

        tf.config.threading.set_inter_op_parallelism_threads(1)
        tf.config.threading.set_intra_op_parallelism_threads(1)
        keras.utils.set_random_seed(0)
        self.np, self.tf = np, tf
        self.model = keras.Sequential(
            [
                keras.Input((SEQ, FEATURES)),
                keras.layers.Dense(HIDDEN, activation="gelu"),
                keras.layers.Dropout(0.1),
                keras.layers.Dense(10),
                keras.layers.GlobalAveragePooling1D(),
            ]
        )
        self.model.compile(
            optimizer=keras.optimizers.Adam(1e-3),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        )
        self.sample = self.batch(8)

    def batch(self, b: int):
        rng = self.np.random.default_rng(b)
        return (
            rng.standard_normal((b, SEQ, FEATURES), dtype=self.np.float32),
            rng.integers(0, 10, b).astype("int32"),
        )

    def step(self, b: int) -> None:
        x, y = self.batch(b)
        self.model.train_on_batch(x, y)

    def is_oom(self, exc: BaseException) -> bool:
        return isinstance(exc, self.tf.errors.ResourceExhaustedError)

    def release(self) -> None:
        gc.collect()


TASKS = {
    "torch": TorchTask,
    "keras": KerasTask,
    "convattn": ConvAttentionTask,
    "cnn": CNNTask,
    "gpt2": GPT2Task,
}
FRAMEWORK = {"keras": "keras"}  # every other task is PyTorch

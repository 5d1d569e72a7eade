"""Watch the batch-scale statistics of a Transformers ``Trainer`` on the W&B dashboard.

    python examples/transformers_monitor.py       # offline run, CPU, ~30 s

A tiny BERT built from a config (nothing is downloaded) learns a token rule on
generated data. The Trainer itself only reports the loss averaged over
``logging_steps``; ``SusceptibilityCallback`` records the loss of every optimizer
step (what ``training_step`` returns, summed over accumulated micro-batches)
and analyses the last 600 steps at each check (``window=600``, linear
detrending). ``report_to="wandb"`` starts the run; the callback logs
``susceptibility/*`` against ``susceptibility/step`` (``state.global_step``) into it.

W&B runs offline unless you set ``WANDB_MODE`` yourself; the script prints the
run folder and the ``wandb sync`` command that uploads it.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_PROJECT", "wandb-batchsize-examples")

import torch  # noqa: E402
import transformers  # noqa: E402
import wandb  # noqa: E402

from wandb_batchsize.integrations.transformers import SusceptibilityCallback  # noqa: E402

STEPS, VOCAB = 1000, 64


class TokenRule(torch.utils.data.Dataset):
    """Random token sequences; the label says whether the first token is in the upper
    half of the vocabulary, flipped for 10 % of the examples (label noise)."""

    def __init__(self, n: int = 8192, seed: int = 0) -> None:
        gen = torch.Generator().manual_seed(seed)
        self.ids = torch.randint(0, VOCAB, (n, 12), generator=gen)
        flip = torch.rand(n, generator=gen) < 0.1
        self.labels = ((self.ids[:, 0] >= VOCAB // 2) ^ flip).long()

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> dict:
        return {"input_ids": self.ids[i], "labels": self.labels[i]}


def main() -> None:
    torch.set_num_threads(1)  # a model this small trains fastest on one core
    config = transformers.BertConfig(
        vocab_size=VOCAB,
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=16,
        num_labels=2,
    )
    torch.manual_seed(0)
    model = transformers.BertForSequenceClassification(config)
    args = transformers.TrainingArguments(
        output_dir=tempfile.mkdtemp(prefix="wbs-example-"),
        max_steps=STEPS,
        per_device_train_batch_size=16,
        learning_rate=5e-4,
        logging_steps=50,
        report_to="wandb",
        run_name="transformers-monitor",
        save_strategy="no",
        use_cpu=True,
        disable_tqdm=True,
    )
    # The last 600 steps at each check, every 200 steps, whatever a check costs.
    monitor = SusceptibilityCallback(check_every=200, window=600, max_overhead=None)
    trainer = transformers.Trainer(
        model=model, args=args, train_dataset=TokenRule(), callbacks=[monitor]
    )
    trainer.train()

    print(monitor.result().summary())
    print(f"checks at steps {monitor.history_steps}")
    run = wandb.run
    where = Path(run.dir).parent
    run.finish()
    if run.settings.mode == "offline":
        print(f"offline run: {where}\nupload it with: wandb sync {where}")


if __name__ == "__main__":
    main()

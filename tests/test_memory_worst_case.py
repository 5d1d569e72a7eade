"""The worst case by construction (max_length, sample_fn(batch, length)) and the eval ceiling.

The budgets are simulated (a module raising the allocator's OOM above a
number of tokens, or of samples with and without gradients): what is tested
is that the probes use the longest sequences and that the evaluation search
runs no-grad forwards only.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

import wandb_batchsize as wbs  # noqa: E402
from wandb_batchsize.memory.worst_case import length_sample_fn, lengthen_sample  # noqa: E402
from wandb_batchsize.tracking import keys  # noqa: E402


class TokenBudget(nn.Module):
    """Embeds token ids; the allocator's OOM above ``tokens`` tokens per batch."""

    def __init__(self, tokens: int = 8192) -> None:
        super().__init__()
        self.tokens = tokens
        self.embed = nn.Embedding(100, 8)
        self.head = nn.Linear(8, 100)
        self.lengths: list[int] = []

    def forward(self, input_ids, labels=None):
        self.lengths.append(input_ids.shape[1])
        if input_ids.numel() > self.tokens:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 1.00 GiB")
        logits = self.head(self.embed(input_ids))
        return nn.functional.cross_entropy(logits.reshape(-1, 100), labels.reshape(-1))


def ids(n: int, length: int):
    x = torch.randint(0, 100, (n, length), generator=torch.Generator().manual_seed(0))
    return {"input_ids": x, "labels": x.clone()}


def find(model, **kwargs):
    return wbs.find_batch_size(model, verbose=False, log_to_wandb=False, tolerance=0.0, **kwargs)


def test_max_length_lengthens_a_short_sample_to_the_worst_case():
    short = find(TokenBudget(), sample=ids(4, 16))
    assert short.max_fitting == 8192 // 16
    model = TokenBudget()
    long = find(model, sample=ids(4, 16), max_length=64)
    assert long.max_fitting == 8192 // 64 and long.max_length == 64
    assert set(model.lengths) == {64}


def test_sample_fn_gets_the_sequence_length():
    seen = []

    def sample_fn(batch_size, length):
        seen.append(length)
        return ids(batch_size, length)

    result = find(TokenBudget(), sample_fn=sample_fn, max_length=128)
    assert result.max_fitting == 8192 // 128 and set(seen) == {128}
    with pytest.raises(TypeError, match="pass max_length="):
        find(TokenBudget(), sample_fn=sample_fn)
    with pytest.raises(TypeError, match="takes only the batch size"):
        find(TokenBudget(), sample_fn=lambda b: ids(b, 8), max_length=32)


def test_lengthen_sample_repeats_tokens_cyclically_in_numpy_and_torch():
    x = np.arange(6).reshape(2, 3)
    out = lengthen_sample({"input_ids": x, "mask": np.ones((2, 3)), "y": np.zeros(2)}, 7)
    assert out["input_ids"].tolist() == [[0, 1, 2, 0, 1, 2, 0], [3, 4, 5, 3, 4, 5, 3]]
    assert out["mask"].shape == (2, 7) and out["y"].shape == (2,)
    t = lengthen_sample((torch.arange(6).reshape(2, 3), torch.zeros(2)), 5)
    assert isinstance(t, tuple) and t[0].tolist() == [[0, 1, 2, 0, 1], [3, 4, 5, 3, 4]]
    assert lengthen_sample(x, 3) is x
    with pytest.raises(ValueError, match="more than max_length=2"):
        lengthen_sample(x, 2)
    with pytest.raises(ValueError, match="has none"):
        lengthen_sample(np.zeros(4), 8)
    with pytest.raises(ValueError, match="max_length must be a positive integer"):
        find(TokenBudget(), sample=ids(2, 4), max_length=0)
    assert length_sample_fn(None, 8) is None


class GradBudget(nn.Module):
    """OOM above ``train`` samples with gradients, above ``evaluation`` without."""

    def __init__(self, train: int, evaluation: int) -> None:
        super().__init__()
        self.train_limit, self.eval_limit = train, evaluation
        self.linear = nn.Linear(4, 3)
        self.grad_modes: list[bool] = []

    def forward(self, x):
        self.grad_modes.append(torch.is_grad_enabled())
        limit = self.train_limit if torch.is_grad_enabled() else self.eval_limit
        if x.shape[0] > limit:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 1.00 GiB")
        return self.linear(x)


def test_the_eval_ceiling_is_searched_with_no_grad_forwards():
    model = GradBudget(train=200, evaluation=700)
    sample = (torch.randn(4, 4), torch.randint(0, 3, (4,)))
    result = find(model, sample=sample, find_eval_batch_size=True)
    assert result.max_fitting == 200 and result.eval_max_fitting == 700
    assert result.eval_batch_size == 624 and result.eval_confirmed  # 700 x 0.9 = 630 -> 624
    assert result.batch_size == 176  # the training size is unchanged by the eval search
    assert result.eval_probes and all(p.phase.startswith("eval ") for p in result.eval_probes)
    assert result.summary()[keys.BATCH_FINDER_EVAL_BATCH_SIZE] == 624
    # one forward per probe (a failed one too) and per confirmation step, in this order
    n_train = len(result.probes) + result.confirm_steps
    assert model.grad_modes == [True] * n_train + [False] * (len(result.eval_probes) + 3)


def test_no_eval_ceiling_by_default():
    result = find(GradBudget(100, 300), sample=(torch.randn(4, 4), torch.randint(0, 3, (4,))))
    assert result.eval_batch_size is None and keys.BATCH_FINDER_EVAL_BATCH_SIZE not in (
        result.summary()
    )

"""find_batch_size with the user's own training step and with mixed precision.

The OOMs come from a simulated budget (a module raising the allocator's OOM
above a size); what is checked is that the user's step really runs in every
probe, that autocast is on, and that the state is restored bitwise after both.
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
from test_memory_torch import assert_same, capture, make_model, sample, trained  # noqa: E402
from torch import nn  # noqa: E402

import wandb_batchsize as wbs  # noqa: E402


def test_step_fn_with_two_losses_and_two_optimizers_runs_and_restores():
    model = make_model(limit=200)
    opt = trained(model)
    head_opt = torch.optim.SGD(model[6].parameters(), lr=0.1, momentum=0.9)
    # momentum state to restore in the second optimizer too
    nn.functional.cross_entropy(model(sample()[0]), sample()[1]).backward()
    head_opt.step()
    before = capture(model, opt)
    head_before = capture(model, head_opt)
    seen = []

    def step_fn(module, batch, optimizer):
        main, head = optimizer
        x, y = batch
        out = module(x)
        loss = nn.functional.cross_entropy(out, y) + 0.1 * out.pow(2).mean()  # two losses
        main.zero_grad()
        head.zero_grad()
        loss.backward()
        main.step()
        head.step()
        seen.append(x.shape[0])
        return loss

    result = wbs.find_batch_size(
        model,
        sample(),
        optimizer=[opt, head_opt],
        step_fn=step_fn,
        verbose=False,
        log_to_wandb=False,
    )
    assert 190 <= result.max_fitting <= 200 < result.first_failing
    # every probe that fitted ran the user's step at its size
    assert set(seen) >= {p.batch_size for p in result.probes if p.fitted}
    assert_same(before, capture(model, opt))
    assert_same(head_before, capture(model, head_opt))


class RecordingLinear(nn.Linear):
    """A linear layer that records the dtype autocast gives its output."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.dtypes: list = []

    def forward(self, x):
        out = super().forward(x)
        self.dtypes.append(out.dtype)
        return out


@pytest.mark.parametrize("precision", ["bf16", None])
def test_precision_runs_the_step_under_autocast_and_restores(precision):
    model = make_model(limit=120)
    model[6] = RecordingLinear(4 * 8 * 8, 10)
    opt = trained(model)
    model[6].dtypes = []
    before = capture(model, opt)
    result = wbs.find_batch_size(
        model, sample(), optimizer=opt, precision=precision, verbose=False, log_to_wandb=False
    )
    assert result.max_fitting <= 120 < result.first_failing
    want = torch.bfloat16 if precision == "bf16" else torch.float32
    assert model[6].dtypes and set(model[6].dtypes) == {want}
    assert_same(before, capture(model, opt))


def test_bad_precision_is_a_clear_error():
    with pytest.raises(ValueError, match="precision must be None, 'bf16' or 'fp16'"):
        wbs.find_batch_size(make_model(), sample(), precision="int8", log_to_wandb=False)

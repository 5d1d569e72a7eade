"""CriticalBatchMonitor: the local critical batch over training, never changing the run."""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")
from test_critical_torch import D, half_mse, regression_model, sample  # noqa: E402

from wandb_batchsize.critical import CriticalBatchMonitor  # noqa: E402


def train(steps: int, monitor_every: int | None, seed: int = 0):
    model = regression_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.02, momentum=0.9)
    torch.manual_seed(seed)
    monitor = None
    if monitor_every:
        monitor = CriticalBatchMonitor(
            model,
            sample,
            half_mse,
            lr=1 / 32,
            every=monitor_every,
            reference_batch=1,
            max_batch_size=16,
            reference_steps=30,
            max_steps=120,
            log_to_wandb=False,
        )
    for step in range(1, steps + 1):
        x, y = sample(4)
        opt.zero_grad()
        half_mse(model(x), y).backward()
        opt.step()
        if monitor is not None:
            monitor.step(step)
    return model, opt, monitor


def test_training_with_the_monitor_is_bitwise_the_training_without_it():
    plain, plain_opt, _ = train(40, None)
    watched, watched_opt, monitor = train(40, 20)
    assert [s for s, _ in monitor.history] == [20, 40]
    for a, b in zip(plain.parameters(), watched.parameters(), strict=True):
        assert torch.equal(a, b)
    for a, b in zip(plain_opt.state.values(), watched_opt.state.values(), strict=True):
        assert torch.equal(a["momentum_buffer"], b["momentum_buffer"])
    series = monitor.B_crit_series
    assert all(math.isfinite(v) and v > 0 for _, v in series)
    # the local target follows the run: each one lower than the last
    targets = [r.target for _, r in monitor.history]
    assert targets == sorted(targets, reverse=True)


def test_a_failing_measurement_warns_once_and_training_goes_on():
    model = regression_model()
    monitor = CriticalBatchMonitor(
        model,
        sample,
        half_mse,
        lr=1e3,
        every=1,
        reference_batch=1,
        max_batch_size=4,
        reference_steps=5,
        log_to_wandb=False,
    )
    with pytest.warns(RuntimeWarning, match="training continues"):
        assert monitor.step(1) is None
    assert monitor.step(2) is None and monitor.history == []
    assert torch.count_nonzero(model.weight) == 0  # untouched
    with pytest.raises(ValueError, match="every must be a positive integer"):
        CriticalBatchMonitor(model, sample, half_mse, lr=0.1, every=0)
    assert model.weight.shape[1] == D

"""measure_critical_batch on PyTorch: a closed-form answer, bitwise restore, bad input.

The test problem (``spec/critical-batch.md``): noiseless linear regression with
Gaussian features ``x ~ N(0, I_d)``, ``y = x . w*``, loss ``1/2 (x . w - y)^2``.
Then ``H = I``, the per-example gradient covariance is
``Sigma = delta delta^T + |delta|^2 I`` (``delta = w - w*``), so
``B_noise = tr(H Sigma) / (G^T H G) = d + 1`` at every point, and the best lr
per step is exactly ``1 / (1 + (d + 1) / B)`` (McCandlish et al. 2018).
"""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

import wandb_batchsize as wbs  # noqa: E402

D = 31
B_NOISE = D + 1
W_STAR = torch.randn(D, generator=torch.Generator().manual_seed(123))


def sample(b: int):
    x = torch.randn(b, D)
    return x, x @ W_STAR


def half_mse(out, y):
    return 0.5 * ((out.reshape(-1) - y) ** 2).mean()


def exact_val():
    """sqrt(d) I as inputs: the mean loss over its rows is the population loss 1/2 |delta|^2."""
    x = torch.eye(D) * math.sqrt(D)
    return [(x, x @ W_STAR)]


def regression_model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    model = nn.Linear(D, 1, bias=False)
    nn.init.zeros_(model.weight)
    return model


def measure(model, **kwargs):
    options = dict(
        val_data=exact_val(),
        lr=1 / 32,
        reference_batch=1,
        max_batch_size=256,
        max_steps=1500,
        repeats=2,
        target=0.5 * float(W_STAR @ W_STAR) / 1000,
        log_to_wandb=False,
        verbose=False,
    )
    options.update(kwargs)
    return wbs.measure_critical_batch(model, sample, half_mse, **options)


def state_of(model, optimizer=None):
    out = {k: v.clone() for k, v in model.state_dict().items()}
    if optimizer is not None:
        for i, s in enumerate(optimizer.state.values()):
            out.update({f"opt{i}.{k}": v.clone() for k, v in s.items() if torch.is_tensor(v)})
    return out


def assert_same(a, b):
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def trained_model_and_optimizer():
    model = nn.Sequential(nn.Linear(D, 8), nn.Tanh(), nn.Linear(8, 1))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(3):
        x, y = sample(16)
        opt.zero_grad()
        half_mse(model(x), y).backward()
        opt.step()
    return model, opt


def exact_b_crit(result):
    """The fit of the exact best-lr curve S*(B) = ln R / ln(1 + B / B_noise) on the same grid.

    With the per-step optimal lr the expected loss contracts by 1 / (1 + B / B_noise)
    each step, whatever the point, so this is the steps-to-target a perfect lr
    search would find (in expectation).
    """
    from wandb_batchsize.critical.fit import fit_steps

    ratio = 0.5 * float(W_STAR @ W_STAR) / result.target
    sizes = sorted(result.steps)
    return fit_steps(sizes, [math.log(ratio) / math.log1p(b / B_NOISE) for b in sizes]).B_crit


@pytest.mark.parametrize(
    "seed", [0, *(pytest.param(s, marks=pytest.mark.slow) for s in range(1, 6))]
)
def test_closed_form_linear_regression_sgd_within_2x(seed):
    result = measure(regression_model(), seed=seed)
    assert 0.5 <= result.B_crit / exact_b_crit(result) <= 2.0, result.summary()
    assert result.bracketed, result.summary()
    # B_noise = d + 1 is the per-step constant; the steps-to-target curve of a
    # constant lr bends later: the fit of the exact curve S* = ln R / ln(1 + B/B_noise)
    # on this grid is about 3 B_noise (what an exact sweep would report)
    assert B_NOISE <= result.B_crit <= 4 * B_NOISE, result.summary()
    low, high = result.interval
    assert low <= result.B_crit <= high
    # the best lrs follow 1 / (1 + B_noise / B) within the lr grid's factor 2
    for b, lr in result.best_lr.items():
        assert 0.5 <= lr * (1 + B_NOISE / b) <= 2.0, (b, lr)
    # and the fitted rule reproduces them within 2x
    for b, lr in result.best_lr.items():
        assert 0.5 <= result.lr_for(b) / lr <= 2.0, (b, lr, result.lr_for(b))
    assert result.optimizer_kind == "sgd" and result.target_source == "user"
    rows = result.table
    assert {r.batch_size for r in rows} == set(result.batch_sizes)
    assert result.samples_used == sum(r.samples for r in rows)
    assert all(r.samples == r.steps * r.batch_size for r in rows)
    assert any(r.diverged for r in rows)  # the lr search went past the stable range somewhere


def test_default_target_from_the_reference_batch_and_progress_lines(capsys):
    result = measure(
        regression_model(),
        target=None,
        reference_steps=300,
        max_batch_size=64,
        repeats=1,
        verbose=True,
    )
    out = capsys.readouterr().out
    assert result.target_source == "reference" and "reached by the reference batch" in out
    assert all(f"{b:>6}" in out for b in result.batch_sizes)
    assert "critical batch size B_crit" in out
    ref = [r for r in result.table if r.batch_size == 1 and r.lr == pytest.approx(1 / 32)]
    assert ref and ref[0].reached and ref[0].steps < 300


def test_max_samples_stops_the_grid_with_a_warning():
    result = measure(regression_model(), max_samples=600, repeats=1)
    assert max(result.batch_sizes) < 256
    assert any("max_samples=600" in w for w in result.warnings)


def test_state_restored_bitwise_after_a_measurement():
    model, opt = trained_model_and_optimizer()
    model.train(False)
    before, rng = state_of(model, opt), torch.get_rng_state()
    measure(
        model, target=None, reference_steps=30, max_steps=60, max_batch_size=8, repeats=1, lr=0.05
    )
    assert_same(before, state_of(model, opt))
    assert torch.equal(rng, torch.get_rng_state()) and not model.training


class BoomError(Exception):
    pass


@pytest.mark.parametrize("error", [BoomError, KeyboardInterrupt])
def test_state_restored_bitwise_after_an_error_mid_measurement(error):
    model, opt = trained_model_and_optimizer()
    before = state_of(model, opt)
    calls = {"n": 0}

    def failing_loss(out, y):
        calls["n"] += 1
        if calls["n"] == 40:
            raise error()
        return half_mse(out, y)

    with pytest.raises(error):
        wbs.measure_critical_batch(
            model,
            sample,
            failing_loss,
            lr=0.05,
            reference_batch=4,
            max_batch_size=16,
            max_steps=50,
            repeats=1,
            log_to_wandb=False,
            verbose=False,
        )
    assert calls["n"] == 40
    assert_same(before, state_of(model, opt))


def test_bad_input_is_a_clear_error():
    model = regression_model()
    with pytest.raises(ValueError, match="lr must be a positive"):
        wbs.measure_critical_batch(model, sample, half_mse, log_to_wandb=False)
    with pytest.raises(ValueError, match="not below the current loss"):
        measure(model, target=1e9)
    with pytest.raises(ValueError, match="at least two sizes"):
        measure(model, batch_sizes=[8])
    with pytest.raises(ValueError, match="max_steps must be a positive integer"):
        measure(model, max_steps=0)
    with pytest.raises(ValueError, match="did not fall"):
        measure(model, target=None, lr=100.0, reference_steps=5)


def test_a_dataset_works_too():
    x = torch.randn(2048, D)
    data = torch.utils.data.TensorDataset(x, x @ W_STAR)
    result = wbs.measure_critical_batch(
        regression_model(),
        data,
        half_mse,
        lr=1 / 32,
        reference_batch=2,
        max_batch_size=32,
        max_steps=400,
        repeats=1,
        log_to_wandb=False,
        verbose=False,
    )
    assert result.batch_sizes[0] == 2 and math.isfinite(result.B_crit)


def test_adam_uses_the_surge_rule():
    result = measure(
        regression_model(),
        optimizer="adam",
        lr=0.03,
        max_batch_size=16,
        max_steps=400,
        target=0.5 * float(W_STAR @ W_STAR) / 10,
        repeats=1,
    )
    assert result.optimizer_kind == "adam"
    peak = result.lr_for(result.lr_B_noise)
    assert peak == pytest.approx(result.lr_max)
    assert (
        result.lr_for(result.lr_B_noise * 8) < peak and result.lr_for(result.lr_B_noise / 8) < peak
    )
    # Adam's steps saturate far below B_noise = d + 1 here (sign-like steps, lr-limited)
    assert result.B_crit < B_NOISE, result.summary()


@pytest.mark.slow
def test_the_grid_stops_early_once_steps_saturate(capsys):
    result = measure(regression_model(), max_batch_size=4096, repeats=1, verbose=True)
    assert max(result.batch_sizes) < 4096
    assert "the grid stops here" in capsys.readouterr().out

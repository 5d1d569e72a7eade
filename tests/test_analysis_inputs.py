"""Inputs a user passes as they come: tensors, long moving-average windows,
constant series, contradictory scale options (issue 14, items 2, 3 and 5)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from wandb_batchsize.analysis import BatchSusceptibility, StreamingSusceptibility, analyze
from wandb_batchsize.analysis.null import _circular_highpass


def _reference_highpass(Y: np.ndarray, w: int) -> np.ndarray:
    """``y[t] - mean(y[(t - w//2 + j) mod n] for j < w)``, one position at a time."""
    n, h = Y.shape[1], w // 2
    out = np.empty_like(Y)
    for t in range(n):
        out[:, t] = Y[:, t] - Y[:, np.arange(t - h, t - h + w) % n].mean(axis=1)
    return out


@pytest.mark.parametrize(("n", "w"), [(40, 1000), (499, 1000), (500, 1000), (300, 7), (9, 4)])
def test_circular_highpass_wraps_windows_longer_than_the_series(n, w):
    Y = np.random.default_rng(n).standard_normal((3, n))
    np.testing.assert_allclose(_circular_highpass(Y, w), _reference_highpass(Y, w), atol=1e-12)


@pytest.mark.parametrize("n", [1019, 1200, 1498, 1499])
def test_moving_average_detrend_longer_than_what_is_left(n):
    x = np.random.default_rng(n).standard_normal(n)
    res = analyze(x, detrend=1000)  # 20..500 values left: the window wraps the surrogate
    assert res.n == n - 999 and 0.0 < res.p_iid <= 1.0
    stream = StreamingSusceptibility(detrend=1000, n_permutations=19).update(x).result()
    assert stream.n == res.n and np.isfinite(stream.p_iid)


@pytest.mark.parametrize("requires_grad", [False, True])
def test_tensors_are_accepted_everywhere(requires_grad):
    t = torch.randn(300, generator=torch.Generator().manual_seed(0), requires_grad=requires_grad)
    ref = analyze(t.detach().numpy())
    for res in (
        analyze(t),
        BatchSusceptibility().feed(t).find_critical(),
        StreamingSusceptibility().update(t).result(),
    ):
        assert res.K_c == ref.K_c and res.diagnostics["n_input"] == 300
    stream = StreamingSusceptibility()
    for v in t[:25]:
        stream.update(v)  # 0-d tensors, one per step
    assert stream.n == 25


def test_constant_series_is_called_degenerate_not_iid():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        res = analyze(np.full(300, 0.7))
        stream = StreamingSusceptibility().update(np.full(300, 0.7)).result()
    for r in (res, stream):
        assert r.regime == "degenerate" and not r.is_significant
        text = r.summary()
        assert "regime      = degenerate" in text and "not a finding" in text
        assert "iid" not in text.replace("p_iid", "")


@pytest.mark.parametrize(("K_min", "K_max"), [(50, 10), (10, 10), (2, 2)])
def test_k_max_not_above_k_min_is_an_error(K_min, K_max):
    x = np.random.default_rng(0).standard_normal(2000)
    for call in (
        lambda: analyze(x, K_min=K_min, K_max=K_max),
        lambda: BatchSusceptibility(K_min=K_min, K_max=K_max),
        lambda: StreamingSusceptibility(K_min=K_min, K_max=K_max),
    ):
        with pytest.raises(ValueError, match="K_max=.* must be greater than K_min"):
            call()

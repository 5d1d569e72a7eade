"""Streaming analysis: constant memory, same curve as the batch analysis."""

from __future__ import annotations

import json

import numpy as np
import pytest

from wandb_batchsize.analysis import StreamingSusceptibility, analyze

EXACT_FIELDS = ("K_c", "kappa", "alpha", "alpha_se", "tau_int", "ess", "K_corr")


def noisy_walk(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return 5.0 + 0.02 * np.cumsum(rng.standard_normal(n)) + rng.standard_normal(n)


def assert_same_curve(a, b):
    np.testing.assert_array_equal(a.K_values, b.K_values)
    np.testing.assert_allclose(a.V_values, b.V_values, rtol=1e-9)
    np.testing.assert_allclose(a.chi_values, b.chi_values, rtol=1e-7, atol=1e-9)
    for f in EXACT_FIELDS:
        assert getattr(a, f) == pytest.approx(getattr(b, f), rel=1e-6), f
    assert a.n == b.n


def feed_mixed(s: StreamingSusceptibility, x: np.ndarray) -> None:
    """Single floats, small and large chunks, in an irregular pattern."""
    i = 0
    sizes = [1, 7, 1, 300, 1, 1, 4096, 13]
    k = 0
    while i < x.size:
        step = sizes[k % len(sizes)]
        if step == 1:
            s.update(float(x[i]))
        else:
            s.update(x[i : i + step])
        i += step
        k += 1


@pytest.mark.parametrize("n", [20, 157, 2000, 9973, 30011])
def test_streaming_equals_batch_at_several_n(n):
    x = noisy_walk(n, seed=n)
    s = StreamingSusceptibility(n_permutations=0)
    feed_mixed(s, x)
    assert s.n == n
    assert_same_curve(s.result(), analyze(x, n_permutations=0))


def test_streaming_equals_batch_at_every_checkpoint():
    x = noisy_walk(12_345, seed=1)
    s = StreamingSusceptibility(n_permutations=0)
    done = 0
    for stop in (25, 999, 1000, 1001, 5000, 12_345):
        s.update(x[done:stop])
        done = stop
        assert_same_curve(s.result(), analyze(x[:stop], n_permutations=0))


def test_per_value_updates_equal_one_chunk():
    x = noisy_walk(3000, seed=2)
    a = StreamingSusceptibility(n_permutations=0)
    for v in x:
        a.update(v)
    b = StreamingSusceptibility(n_permutations=0).update(x)
    np.testing.assert_allclose(a.result().V_values, b.result().V_values, rtol=1e-12)


@pytest.mark.parametrize("detrend", ["diff", 25, 4])
def test_streaming_detrend_equals_batch(detrend):
    x = noisy_walk(8001, seed=3)
    s = StreamingSusceptibility(n_permutations=0, detrend=detrend)
    feed_mixed(s, x)
    assert_same_curve(s.result(), analyze(x, n_permutations=0, detrend=detrend))


def test_streaming_linear_detrend_is_refused():
    with pytest.raises(ValueError, match="linear"):
        StreamingSusceptibility(detrend="linear")


def test_grid_capped_at_max_scale_equals_batch_with_that_kmax():
    x = noisy_walk(5000, seed=4)
    s = StreamingSusceptibility(max_scale=150, n_permutations=0).update(x)
    res = s.result()
    assert res.diagnostics["K_max_capped"] is True
    assert res.K_values[-1] == 150
    assert_same_curve(res, analyze(x, K_max=150, n_permutations=0))


def test_custom_parameters_match_batch():
    x = noisy_walk(6000, seed=5)
    kw = dict(K_min=4, K_max=300, n_points=25, min_batches=8)
    s = StreamingSusceptibility(**kw, n_permutations=0).update(x)
    assert_same_curve(s.result(), analyze(x, **kw, n_permutations=0))


def test_large_offset_keeps_precision():
    # a loss around 1e4 with tiny noise: the prefix sum must not eat the digits
    rng = np.random.default_rng(6)
    x = 1e4 + 1e-3 * rng.standard_normal(40_000)
    s = StreamingSusceptibility(n_permutations=0)
    for start in range(0, x.size, 777):
        s.update(x[start : start + 777])
    assert_same_curve(s.result(), analyze(x, n_permutations=0))


def test_drifting_series_equals_batch():
    # a loss falling from 10 to 0.1 with small noise, fed in chunks
    rng = np.random.default_rng(7)
    t = np.arange(200_000)
    x = 0.1 + 9.9 * np.exp(-t / 40_000) + 1e-3 * rng.standard_normal(t.size)
    s = StreamingSusceptibility(n_permutations=0)
    for start in range(0, x.size, 5000):
        s.update(x[start : start + 5000])
    ref = analyze(x, K_max=10_000, n_permutations=0)
    np.testing.assert_allclose(s.result().V_values, ref.V_values, rtol=1e-9)


def test_memory_is_independent_of_n():
    s = StreamingSusceptibility(max_scale=500, n_permutations=0)
    s.update(noisy_walk(2000))
    sizes = {k: v.nbytes for k, v in vars(s).items() if isinstance(v, np.ndarray)}
    s.update(noisy_walk(100_000, seed=1))
    after = {k: v.nbytes for k, v in vars(s).items() if isinstance(v, np.ndarray)}
    assert after == sizes
    assert sum(after.values()) < 100_000


def test_nan_dropped_and_counted():
    x = noisy_walk(500)
    s = StreamingSusceptibility(n_permutations=0)
    s.update(x[:100])
    s.update(float("nan"))
    s.update(np.array([np.inf, *x[100:200]]))
    s.update(x[200:])
    assert s.n == 500 and s.n_dropped == 2
    res = s.result()
    assert res.diagnostics["n_dropped"] == 2
    assert_same_curve(res, analyze(x, n_permutations=0))
    with pytest.raises(ValueError, match="position 3"):
        StreamingSusceptibility(nan_policy="raise").update([1.0, 2.0, 3.0, np.nan])


def test_too_few_values_is_a_clear_error():
    s = StreamingSusceptibility().update(np.arange(5.0))
    with pytest.raises(ValueError, match="need at least 20 finite values, got 5"):
        s.result()
    with pytest.raises(ValueError, match="1-D"):
        s.update(np.zeros((2, 2)))


def test_streaming_full_result_uses_gaussian_null_and_is_json():
    x = noisy_walk(4000, seed=7)
    res = StreamingSusceptibility(n_permutations=99, seed=1).update(x).result()
    assert res.diagnostics["null_method"] == "gaussian"
    assert 0 < res.p_iid <= 1
    json.dumps(res.to_dict(), allow_nan=False)
    # same p-value as the batch analysis with the same (Gaussian) null
    batch = analyze(x, n_permutations=99, seed=1, null="gaussian")
    assert res.p_iid == batch.p_iid
    assert res.is_significant == batch.is_significant

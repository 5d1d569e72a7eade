"""The figures render from real analysis results and carry the numbers they claim."""

from __future__ import annotations

import numpy as np

from wandb_batchsize import analyze, analyze_sweep
from wandb_batchsize.plot import plot_comparison, plot_susceptibility, plot_sweep


def _ar1(rho: float, n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = np.empty(n)
    x[0] = 0.0
    for i in range(1, n):
        x[i] = rho * x[i - 1] + rng.normal()
    return x


def test_susceptibility_figure(tmp_path):
    result = analyze(_ar1(0.8, 3000, 0))
    fig = plot_susceptibility(result, title="AR(1)")
    ax_v, ax_chi = fig.axes
    assert ax_v.get_xscale() == "log" and ax_v.get_yscale() == "log"
    assert any(f"K_c = {result.K_c:.0f}" in t.get_text() for t in ax_chi.get_legend().get_texts())
    assert f"kappa = {result.kappa:.2f}" in ax_chi.get_title()
    fig.savefig(tmp_path / "s.png")
    assert (tmp_path / "s.png").stat().st_size > 10_000


def test_comparison_and_sweep_figures(tmp_path):
    results = {
        "iid": analyze(np.random.default_rng(1).normal(size=2000)),
        "ar1": analyze(_ar1(0.9, 2000, 2)),
    }
    fig = plot_comparison(results)
    labels = [t.get_text() for t in fig.axes[1].get_legend().get_texts()]
    assert labels == ["iid", "ar1"]
    sweep = analyze_sweep(
        [16, 32, 64, 128, 256, 16, 32, 64, 128, 256],
        [1.0, 0.9, 0.85, 0.84, 0.95, 1.02, 0.91, 0.86, 0.83, 0.97],
    )
    fig = plot_sweep(sweep)
    assert fig.axes[0].get_xscale() == "log"
    fig.savefig(tmp_path / "w.png")

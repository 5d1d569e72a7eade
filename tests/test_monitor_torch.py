"""SusceptibilityMonitor in a real PyTorch loop, logging to an offline W&B run."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import fast_settings, run_dir_of

torch = pytest.importorskip("torch")

import wandb_batchsize as wbs  # noqa: E402
from wandb_batchsize.analysis import analyze  # noqa: E402
from wandb_batchsize.tracking.offline import read_run  # noqa: E402


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """Tiny models train fastest on one thread, and the CI machine is shared."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _train(monitor, steps: int, *, device: str = "cpu", seed: int = 0) -> list[float]:
    """A tiny regression MLP; returns the loss of each step as computed."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(4096, 8, generator=gen)
    y = x @ torch.randn(8, 1, generator=gen) + 0.3 * torch.randn(4096, 1, generator=gen)
    x, y = x.to(device), y.to(device)
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1))
    model = model.to(device)
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    order = torch.randperm(4096, generator=gen)
    seen = []
    for step in range(1, steps + 1):
        idx = order[(step * 16) % 4096 : (step * 16) % 4096 + 16].to(device)
        loss = torch.nn.functional.mse_loss(model(x[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        monitor.on_step(loss, step=step)  # the tensor: no .item() in the loop
        seen.append(loss.detach())
    return [float(v) for v in seen]


def test_monitor_in_a_pytorch_loop_logs_to_the_run(wandb_env):
    import wandb

    run = wandb.init(project="monitor-torch", settings=fast_settings())
    monitor = wbs.SusceptibilityMonitor(check_every=100, detrend=50, max_overhead=None)
    losses = _train(monitor, 400)
    final = monitor.finish()
    run.finish()

    # the analysed values are the losses really computed, every one of them
    expected = analyze(losses, detrend=50)
    np.testing.assert_array_equal(final.K_values, expected.K_values)
    np.testing.assert_allclose(final.V_values, expected.V_values, rtol=1e-6)
    assert final.n == expected.n and final.K_c == expected.K_c
    assert monitor.history_steps == [100, 200, 300, 400] and monitor.history[-1] is final

    logged = read_run(run_dir_of(run))
    assert logged.history_of("susceptibility/step") == [100, 200, 300, 400]
    for key in ("K_c", "kappa", "alpha", "tau_int", "p_iid", "significant"):
        assert len(logged.history_of(f"susceptibility/{key}")) == 4, key
    # the first check (100 steps, 51 values after the moving average) is analysed too
    assert logged.history_of("susceptibility/K_c")[-1] == final.K_c
    step_metrics = {
        m.get("glob_name") or m.get("name"): m.get("step_metric") for m in logged.metrics
    }
    assert step_metrics["susceptibility/*"] == "susceptibility/step"
    assert step_metrics["susceptibility/K_c"] == "susceptibility/step"
    # chi(K) and V(K): one table per check, the last one in the summary
    table = logged.table("susceptibility/chi_chart_table")
    assert table["columns"] == ["K", "V", "chi", "K_c", "is_K_c"]
    assert [row[0] for row in table["data"]] == [float(k) for k in final.K_values]
    np.testing.assert_allclose([row[1] for row in table["data"]], final.V_values, rtol=1e-6)
    assert sum(row[4] for row in table["data"]) == 1
    charts = logged.visualizations()
    assert charts["susceptibility/chi_chart"]["panel_config"]["panelDefId"] == "wandb/line/v0"
    assert "susceptibility/V_chart" in charts
    # the final result in the summary
    summary = logged.summary
    assert summary["susceptibility/final/K_c"] == final.K_c
    assert summary["susceptibility/final/step"] == 400
    assert summary["susceptibility/final/result"]["n"] == final.n
    assert summary["susceptibility/final/regime"] == final.regime


def test_floats_and_tensors_are_the_same_series_and_window_keeps_the_last_steps():
    options = {"window": 120, "log_to_wandb": False, "max_overhead": None}
    a = wbs.SusceptibilityMonitor(50, **options)
    b = wbs.SusceptibilityMonitor(50, **options)
    losses = torch.rand(300, dtype=torch.float64)
    for v in losses:
        a.on_step(v)
        b.on_step(float(v))
    np.testing.assert_array_equal(a.values(), b.values())
    np.testing.assert_array_equal(a.values(), losses[-120:].numpy())
    assert a.result().K_c == b.result().K_c and a.history_steps == [50, 100, 150, 200, 250, 300]
    with a:
        pass  # the context manager finishes the monitor


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_no_host_device_synchronisation_between_checks():
    monitor = wbs.SusceptibilityMonitor(check_every=10**6, window=1000, log_to_wandb=False)
    torch.cuda.set_sync_debug_mode("error")
    try:
        losses = torch.rand(200, device="cuda")
        for i in range(200):  # would raise on .item(), .cpu() or any other sync
            monitor.on_step(losses[i] * 2, step=i + 1)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    # one transfer when the values are needed
    np.testing.assert_allclose(monitor.values(), (losses * 2).double().cpu().numpy(), rtol=1e-6)
    assert monitor.result().n == 200


def test_the_sweep_program_gets_a_result_on_a_64_step_run(wandb_env):
    """Issue 14, item 1: sweeps/train.py with --batch_size=64 trains 64 steps; with its
    old detrend=50 the monitor needed 69 and wrote no result."""
    import os
    import subprocess
    import sys

    # its own process: wandb reads WANDB_DIR once per process (the fixture's dirs); not
    # through this process's W&B service (wandb.init exports WANDB_SERVICE to children)
    env = {k: v for k, v in os.environ.items() if k != "WANDB_SERVICE"}
    program = [sys.executable, "-m", "wandb_batchsize.demo.sweep_train", "--batch_size=64"]
    subprocess.run(
        [*program, "--project=monitor-sweep"], check=True, capture_output=True, env=env
    )
    (run_dir,) = wandb_env.rglob("offline-run-*")
    logged = read_run(run_dir)
    assert logged.summary["susceptibility/final/steps"] == 64
    assert logged.summary["susceptibility/final/detrend"] == "linear"  # < 100 steps
    assert np.isfinite(logged.summary["susceptibility/final/K_c"])

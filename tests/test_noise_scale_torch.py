"""The PyTorch gradient-noise-scale monitor: accuracy, no effect on training, no host sync."""

from __future__ import annotations

import os
import socket
import warnings

import pytest

torch = pytest.importorskip("torch")

from conftest import run_dir_of  # noqa: E402

from wandb_batchsize.integrations.torch import GradientNoiseScaleMonitor  # noqa: E402
from wandb_batchsize.tracking.offline import read_run  # noqa: E402


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Tiny models run fastest on one thread, and do not stall on a busy 2-core machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


D, SIGMA = 10, 1.0


def regression_problem(seed: int = 0, scale: float = 0.3, data_seed: int | None = None):
    """Linear regression at fixed weights with its closed-form |G|^2 and tr(Sigma).

    x ~ N(0, diag(lam)), y = x.w* + sigma eps, loss 0.5 (x.w - y)^2 (see test_noise_scale).
    The data come from ``data_seed``'s stream (default: the same as the weights').
    """
    gen = torch.Generator().manual_seed(seed)
    lam = torch.linspace(0.5, 2.0, D, dtype=torch.float64)
    w_star = torch.randn(D, generator=gen, dtype=torch.float64)
    model = torch.nn.Linear(D, 1, bias=False).double()
    with torch.no_grad():
        model.weight.copy_(w_star + scale * torch.randn(D, generator=gen, dtype=torch.float64))
    delta = (model.weight[0] - w_star).detach()
    G = lam * delta
    grad_sq = float(G @ G)
    trace = float((delta @ (lam * delta) + SIGMA**2) * lam.sum() + grad_sq)
    if data_seed is not None:
        gen = torch.Generator().manual_seed(data_seed)

    def batch(b: int):
        x = torch.randn(b, D, generator=gen, dtype=torch.float64) * lam.sqrt()
        y = x @ w_star + SIGMA * torch.randn(b, generator=gen, dtype=torch.float64)
        return x, y

    return model, batch, grad_sq, trace


def loss_fn(model, x, y):
    return 0.5 * ((model(x)[:, 0] - y) ** 2).mean()


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_closed_form_linear_regression_within_15_percent(reduction):
    model, batch, grad_sq, trace = regression_problem()
    b, k = 8, 4
    gns = GradientNoiseScaleMonitor(
        model, b, accumulation_steps=k, log_every=100, decay=None, loss_reduction=reduction
    )
    for _ in range(300):  # fixed weights: no optimizer step
        for _ in range(k):
            loss = loss_fn(model, *batch(b))
            (loss / k if reduction == "mean" else loss).backward()
        gns.step()
        model.zero_grad()
    r = gns.result()
    assert r.n_steps == 300
    assert r.B_simple == pytest.approx(trace / grad_sq, rel=0.15)
    assert r.grad_sq == pytest.approx(grad_sq, rel=0.15)
    assert r.trace_cov == pytest.approx(trace, rel=0.15)
    lo, hi = r.B_simple_interval
    assert lo < trace / grad_sq < hi


def test_grad_scaler_is_divided_out():
    results = []
    for init_scale in (None, 1024.0):
        model, batch, _, _ = regression_problem(data_seed=5)
        scaler = torch.amp.GradScaler("cpu", init_scale=init_scale) if init_scale else None
        gns = GradientNoiseScaleMonitor(model, 8, accumulation_steps=2, scaler=scaler, decay=None)
        for _ in range(20):
            for _ in range(2):
                loss = loss_fn(model, *batch(8)) / 2
                (scaler.scale(loss) if scaler else loss).backward()
            gns.step()
            model.zero_grad()
        results.append(gns.result())
    plain, scaled = results
    assert scaled.grad_sq == pytest.approx(plain.grad_sq, rel=1e-9)
    assert scaled.trace_cov == pytest.approx(plain.trace_cov, rel=1e-9)


def make_mlp_training(seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = torch.nn.Sequential(
        torch.nn.Linear(12, 32), torch.nn.GELU(), torch.nn.LayerNorm(32), torch.nn.Linear(32, 3)
    )
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.01)
    data = [
        (torch.randn(6, 12, generator=gen), torch.randint(0, 3, (6,), generator=gen))
        for _ in range(90)
    ]
    return model, opt, data


def train(monitor_kwargs: dict | None, steps: int = 30, k: int = 3):
    model, opt, data = make_mlp_training()
    gns = (
        GradientNoiseScaleMonitor(model, 6, **monitor_kwargs)
        if monitor_kwargs is not None
        else None
    )
    it = iter(data)
    for _ in range(steps):
        for _ in range(k):
            x, y = next(it)
            (torch.nn.functional.cross_entropy(model(x), y) / k).backward()
        if gns is not None:
            gns.step()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad()
    return model, gns


@pytest.mark.parametrize(
    "kwargs", [{"accumulation_steps": 3, "log_every": 7}, {"log_every": 1000, "every": 2}]
)
def test_training_is_bitwise_unchanged(kwargs):
    plain, _ = train(None)
    watched, gns = train(kwargs)
    for a, b in zip(plain.state_dict().values(), watched.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    r = gns.result()
    assert r.n_steps == (30 if "every" not in kwargs else 15)
    assert r.trace_cov > 0


def test_no_host_sync_between_logs():
    """No ``.item()``/``bool(tensor)`` per step: the only device-to-host read is the flush."""
    from torch.utils._python_dispatch import TorchDispatchMode

    class Spy(TorchDispatchMode):
        def __init__(self):
            super().__init__()
            self.reads = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            if func is torch.ops.aten._local_scalar_dense.default:
                self.reads += 1
            return func(*args, **(kwargs or {}))

    model, batch, _, _ = regression_problem()
    gns = GradientNoiseScaleMonitor(model, 8, accumulation_steps=2, log_every=10_000)
    spy = Spy()
    with spy:
        for _ in range(20):
            for _ in range(2):
                (loss_fn(model, *batch(8)) / 2).backward()
            gns.step()
            model.zero_grad()
    assert spy.reads == 0
    assert len(gns._pending) == 20 and gns.tracker.n_steps == 0
    assert all(isinstance(t, torch.Tensor) for t in gns._pending)
    assert gns.result().n_steps == 20 and not gns._pending


def test_one_batch_size_warns_and_measures_nothing():
    model, batch, _, _ = regression_problem()
    gns = GradientNoiseScaleMonitor(model, 8)
    with pytest.warns(RuntimeWarning, match="two batch sizes"):
        for _ in range(3):
            loss_fn(model, *batch(8)).backward()
            gns.step()
            model.zero_grad()
    assert gns.n_skipped == 3
    with pytest.raises(ValueError, match="accumulation"):
        gns.result()


def test_counts_micro_batches_and_skips_a_short_window():
    model, batch, _, _ = regression_problem()
    gns = GradientNoiseScaleMonitor(model, 8, accumulation_steps=4, log_every=1000)
    for k in (4, 4, 2):  # the last window is short (end of an epoch)
        for _ in range(k):
            (loss_fn(model, *batch(8)) / k).backward()
        gns.step()
        model.zero_grad()
    assert gns.n_skipped == 1 and len(gns._pending) == 2
    counted = GradientNoiseScaleMonitor(model, 8, log_every=1000)  # k counted per step
    gns.detach()
    for _ in range(3):
        for _ in range(3):
            (loss_fn(model, *batch(8)) / 3).backward()
        counted.step()
        model.zero_grad()
    assert counted.result().n_steps == 3
    assert counted._pending_sizes == [] and counted.tracker.n_steps == 3


def test_logs_to_an_offline_run_against_its_step(offline_run):
    model, batch, _, _ = regression_problem()
    gns = GradientNoiseScaleMonitor(model, 8, accumulation_steps=2, log_every=10, decay=None)
    for _ in range(30):
        for _ in range(2):
            (loss_fn(model, *batch(8)) / 2).backward()
        gns.step()
        model.zero_grad()
    final = gns.finish()
    offline_run.finish()
    logged = read_run(run_dir_of(offline_run))
    assert logged.history_of("gns/step") == [10, 20, 30]
    b_simple = logged.history_of("gns/B_simple")
    assert len(b_simple) == 3 and b_simple[-1] == pytest.approx(final.B_simple)
    assert len(logged.history_of("gns/grad_sq")) == 3
    assert len(logged.history_of("gns/trace_cov")) == 3
    step_metrics = {m.get("glob_name"): m.get("step_metric") for m in logged.metrics}
    assert step_metrics["gns/*"] == "gns/step"
    assert logged.summary["gns/B_simple"] == pytest.approx(final.B_simple)
    assert logged.summary["gns/n_steps"] == 30
    assert not gns.hooks.attached  # finish() removed the hooks


# -- DDP: two gloo processes on the CPU ---------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_worker(rank: int, world: int, port: int, out: str) -> None:
    import torch.distributed as dist

    os.environ["MASTER_ADDR"], os.environ["MASTER_PORT"] = "127.0.0.1", str(port)
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        results = {}
        # 1. closed form at fixed weights, 8 examples per rank, no accumulation: B_big = 16
        model, batch, grad_sq, trace = regression_problem(seed=0, data_seed=1000 + rank)
        ddp = torch.nn.parallel.DistributedDataParallel(model)
        gns = GradientNoiseScaleMonitor(ddp, 8, log_every=50, decay=None)
        for _ in range(300):
            loss_fn(ddp, *batch(8)).backward()
            gns.step()
            ddp.zero_grad()
        r = gns.result()
        results["closed"] = (r.B_simple, r.grad_sq, r.trace_cov, trace / grad_sq, grad_sq, trace)
        # 2. training with accumulation (no_sync) is bitwise the same with the monitor
        finals = []
        for watch in (False, True):
            torch.manual_seed(0)
            net = torch.nn.Sequential(
                torch.nn.Linear(6, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1)
            )
            dnet = torch.nn.parallel.DistributedDataParallel(net)
            opt = torch.optim.Adam(dnet.parameters(), lr=1e-2)
            gen = torch.Generator().manual_seed(100 + rank)
            mon = GradientNoiseScaleMonitor(dnet, 4, log_every=10) if watch else None
            for _ in range(20):
                for i in range(3):
                    x = torch.randn(4, 6, generator=gen)
                    y = x.sum(1, keepdim=True) + torch.randn(4, 1, generator=gen)
                    if i < 2:
                        with dnet.no_sync():
                            (((dnet(x) - y) ** 2).mean() / 3).backward()
                    else:
                        (((dnet(x) - y) ** 2).mean() / 3).backward()
                if mon is not None:
                    mon.step()
                opt.step()
                opt.zero_grad()
            finals.append([p.detach().clone() for p in net.parameters()])
            if mon is not None:
                results["accum_steps"] = mon.result().n_steps
        results["bitwise"] = all(torch.equal(a, b) for a, b in zip(*finals, strict=True))
        torch.save(results, f"{out}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def test_ddp_two_gloo_processes(tmp_path):
    mp = pytest.importorskip("torch.multiprocessing")
    if not torch.distributed.is_available():
        pytest.skip("torch.distributed is not available")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mp.spawn(_ddp_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2)
    r0, r1 = (torch.load(tmp_path / f"rank{i}.pt") for i in range(2))
    assert r0["bitwise"] and r1["bitwise"]
    b_simple, grad_sq, trace, b_true, g_true, t_true = r0["closed"]
    assert r1["closed"][:3] == r0["closed"][:3]  # ranks agree after the per-log all-reduce
    assert b_simple == pytest.approx(b_true, rel=0.15)
    assert grad_sq == pytest.approx(g_true, rel=0.15)
    assert trace == pytest.approx(t_true, rel=0.15)
    assert r0["accum_steps"] == 20

"""find_batch_size on PyTorch models: API, state restoration, errors.

OOMs here come from a simulated budget (a module that raises
``torch.OutOfMemoryError`` above a size) — enough for the logic and the state
handling; the real allocator failures are in test_memory_capped.py.
"""

from __future__ import annotations

import os
import random

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

import wandb_batchsize as wbs  # noqa: E402
from wandb_batchsize.memory import MemorySearchResult, NoBatchSizeFitsError  # noqa: E402


class Budget(nn.Module):
    """Raises the allocator's OOM above ``limit`` samples, or ``error`` at ``error_at``."""

    def __init__(self, limit=10_000, error=None, error_at=None):
        super().__init__()
        self.limit, self.error, self.error_at = limit, error, error_at

    def forward(self, x):
        if self.error is not None and x.shape[0] >= self.error_at:
            raise self.error
        if x.shape[0] > self.limit:
            raise torch.OutOfMemoryError(f"CUDA out of memory. Tried to allocate {x.shape[0]} MiB")
        return x


def make_model(**budget):
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.Dropout(0.2),
        Budget(**budget),
        nn.Flatten(),
        nn.Linear(4 * 8 * 8, 10),
    )


def trained(model):
    """A model and an optimizer with state, gradients and eval mode: everything to restore."""
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.1)
    x, y = torch.randn(8, 3, 8, 8), torch.randint(0, 10, (8,))
    for _ in range(2):
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    opt.zero_grad(set_to_none=False)
    nn.functional.cross_entropy(model(x), y).backward()  # leave gradients in place
    model.eval()
    model[3].train()  # a mixed mode to restore
    return opt


def capture(model, opt):
    state = {k: v.clone() for k, v in model.state_dict().items()}
    grads = [None if p.grad is None else p.grad.clone() for p in model.parameters()]
    modes = [m.training for m in model.modules()]
    opt_state = {
        i: {k: (v.clone() if torch.is_tensor(v) else v) for k, v in s.items()}
        for i, s in enumerate(opt.state.values())
    }
    groups = [{k: v for k, v in g.items() if k != "params"} for g in opt.param_groups]
    rng = (torch.get_rng_state(), random.getstate(), np.random.get_state())
    return state, grads, modes, opt_state, groups, rng


def assert_same(before, after):
    state0, grads0, modes0, opt0, groups0, rng0 = before
    state1, grads1, modes1, opt1, groups1, rng1 = after
    assert state0.keys() == state1.keys()
    for k in state0:
        a, b = state0[k].reshape(-1), state1[k].reshape(-1)
        assert torch.equal(a.view(torch.uint8), b.view(torch.uint8)), k  # bitwise
    for g0, g1 in zip(grads0, grads1, strict=True):
        assert (g0 is None and g1 is None) or torch.equal(g0, g1)
    assert modes0 == modes1
    assert opt0.keys() == opt1.keys()
    for i in opt0:
        for k, v in opt0[i].items():
            w = opt1[i][k]
            assert torch.equal(v, w) if torch.is_tensor(v) else v == w
    assert groups0 == groups1
    assert torch.equal(rng0[0], rng1[0]) and rng0[1] == rng1[1]
    assert all(np.array_equal(a, b) for a, b in zip(rng0[2], rng1[2], strict=True))


def sample():
    g = torch.Generator().manual_seed(1)
    return torch.randn(4, 3, 8, 8, generator=g), torch.randint(0, 10, (4,), generator=g)


def test_result_and_state_restored_bitwise(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(torch, "save", lambda *a, **k: pytest.fail("wrote a checkpoint"))
    model = make_model(limit=300)
    opt = trained(model)
    before = capture(model, opt)
    result = wbs.find_batch_size(model, sample(), optimizer=opt, verbose=False, log_to_wandb=False)
    assert_same(before, capture(model, opt))
    assert isinstance(result, MemorySearchResult)
    assert result.max_fitting <= 300 < result.first_failing
    assert 300 - result.max_fitting <= 0.03 * 300
    assert result.batch_size == int(result.max_fitting * 0.9) // 8 * 8 == int(result)
    assert result.model_params == sum(p.numel() for p in model.parameters())
    assert result.model_memory_mb == pytest.approx(result.model_params * 16 / 2**20)
    assert result.device == "cpu" and result.framework == "pytorch"
    assert result.config == {"batch_size": result.batch_size, "batch_size_source": "dynamic_finder"}
    assert all(hasattr(p, k) for p in result.probes for k in ("batch_size", "fitted", "seconds"))
    assert any(not p.fitted for p in result.probes)
    assert sorted(os.listdir(tmp_path)) == []  # nothing written to disk


@pytest.mark.parametrize(
    "error", [ValueError("bad batch"), KeyboardInterrupt()], ids=["ValueError", "KeyboardInterrupt"]
)
def test_state_restored_when_a_probe_raises(error):
    model = make_model(error=error, error_at=40)
    opt = trained(model)
    before = capture(model, opt)
    with pytest.raises(type(error)) as info:
        wbs.find_batch_size(model, sample(), optimizer=opt, verbose=False, log_to_wandb=False)
    assert info.value is error  # unchanged, not wrapped
    assert_same(before, capture(model, opt))


def test_default_optimizer_leaves_no_trace():
    model = make_model(limit=100)
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    grads_before = [p.grad for p in model.parameters()]
    result = wbs.find_batch_size(model, sample(), verbose=False, log_to_wandb=False)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert grads_before == [p.grad for p in model.parameters()] == [None] * len(grads_before)
    assert all(m.training for m in model.modules())
    assert result.max_fitting <= 100 < result.first_failing


def test_input_shape_and_sample_fn_and_target_memory(capsys):
    model = make_model(limit=64)
    by_shape = wbs.find_batch_size(
        model, input_shape=(3, 8, 8), max_batch_size=256, tolerance=0, log_to_wandb=False
    )
    assert (by_shape.max_fitting, by_shape.first_failing) == (64, 65)
    out = capsys.readouterr().out
    assert "Batch size finder (pytorch, cpu)" in out and "model parameters" in out
    assert "✓" in out and "✗ OOM" in out and "optimal batch size" in out
    calls = []

    def sample_fn(b):
        calls.append(b)
        return torch.randn(b, 3, 8, 8), torch.randint(0, 10, (b,))

    by_fn = wbs.find_batch_size(
        model, sample_fn=sample_fn, max_batch_size=32, verbose=False, log_to_wandb=False
    )
    assert by_fn.max_fitting == 32 and by_fn.first_failing is None and by_fn.batch_size == 32
    assert calls and max(calls) == 32
    with pytest.raises(ValueError, match="exactly one"):
        wbs.find_batch_size(model, sample(), input_shape=(3, 8, 8), log_to_wandb=False)


def test_target_memory_caps_the_budget():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(256, 4096), nn.ReLU(), nn.Linear(4096, 1))
    capped = wbs.find_batch_size(
        model, input_shape=(256,), target_memory="48MiB", verbose=False, log_to_wandb=False
    )
    # 16 MiB of weights, gradients and Adam state, then ~100 KiB a sample
    assert 16 <= capped.max_fitting < 1000, capped.probes
    assert capped.first_failing is not None
    assert any(p.error == "over target_memory" for p in capped.probes)
    assert all(p.peak_bytes is not None for p in capped.probes)


def test_min_batch_size_that_does_not_fit_raises_a_clear_error():
    with pytest.raises(NoBatchSizeFitsError, match="min_batch_size=2 does not fit"):
        wbs.find_batch_size(make_model(limit=1), sample(), verbose=False, log_to_wandb=False)


def test_hugging_face_style_output_and_dict_batches():
    class WithLoss(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = nn.Embedding(50, 16)
            self.head = nn.Linear(16, 50)

        def forward(self, input_ids, labels):
            if input_ids.shape[0] > 48:
                raise torch.OutOfMemoryError("CUDA out of memory.")
            logits = self.head(self.emb(input_ids))
            loss = nn.functional.cross_entropy(logits.reshape(-1, 50), labels.reshape(-1))
            return type("Output", (), {"loss": loss, "logits": logits})()

    batch = {"input_ids": torch.randint(0, 50, (2, 12)), "labels": torch.randint(0, 50, (2, 12))}
    result = wbs.find_batch_size(WithLoss(), batch, verbose=False, log_to_wandb=False)
    assert result.max_fitting <= 48 < result.first_failing


def test_ddp_wrapped_model_is_probed_through_its_module():
    from wandb_batchsize.backends.torch_memory import unwrap

    inner = make_model()
    assert unwrap(nn.DataParallel(inner)) is inner


def test_not_a_model():
    with pytest.raises(TypeError, match="torch.nn.Module or a Keras model"):
        wbs.find_batch_size(object(), input_shape=(3,), log_to_wandb=False)


def test_device_memory_cap_is_a_no_op_on_cpu():
    from wandb_batchsize.backends.torch_memory import device_memory_cap

    with device_memory_cap(torch.device("cpu"), 1 << 30):
        pass


def test_gpu_meter_feeds_the_affine_fit_with_a_simulated_device():
    """The CUDA path's logic on a simulated allocator (no GPU was available for this test).

    The fake backend answers the calls TorchDeviceMeter makes on ``torch.cuda``:
    a step at batch B peaks at ``a + b * B`` bytes on a 16 GiB device, and a
    ``target_memory`` of 6 GiB caps the budget as on a smaller card.
    """
    from wandb_batchsize.backends.torch_memory import TorchDeviceMeter
    from wandb_batchsize.memory.search import CeilingSearch, ProbeOutcome, run_search

    a, b, total = 1.5 * 2**30, 7.3 * 2**20, 16 * 2**30

    class FakeCuda:
        def __init__(self):
            self.peak = 0

        def synchronize(self, device):
            pass

        def reset_peak_memory_stats(self, device):
            self.peak = 0

        def mem_get_info(self, device):
            return total - 2**30, total

        def memory_reserved(self, device):
            return 0

        def max_memory_allocated(self, device):
            return self.peak

        def max_memory_reserved(self, device):
            return self.peak

    meter = TorchDeviceMeter(torch.device("cpu"), target_bytes=6 * 2**30)
    meter.backend = fake = FakeCuda()
    true_max = int((6 * 2**30 - a) // b)

    def probe(batch):
        meter.start()
        need = a + b * batch
        fake.peak = int(min(need, 6 * 2**30))
        reading = meter.stop()
        if need > 6 * 2**30:  # the allocator's per-process fraction raises
            return ProbeOutcome(False, reading.peak_bytes, None, reading.budget_bytes, "OOM")
        return ProbeOutcome(True, reading.peak_bytes, reading.headroom_bytes, reading.budget_bytes)

    out = run_search(probe, CeilingSearch(2, 4096))
    assert out.predicted is not None and abs(out.predicted - true_max) <= 1
    assert out.max_fitting <= true_max < out.first_failing
    assert true_max - out.max_fitting <= 0.02 * true_max
    assert len(out.probes) <= 7 and out.oom_events == 1
    assert out.fit.slope == pytest.approx(b, rel=1e-6)

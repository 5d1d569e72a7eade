"""A real out-of-memory error in one probe size, under an address-space cap.

The probe runs in a child process (the cap is per process and must not touch
the test runner). The child imports torch, builds a model whose activations
grow with the batch (16 -> 16384 -> 1, about 0.2 MB per sample for the forward
and backward pass), warms up (threads, allocator, and the analysis' BLAS
buffers: a lazy import or first BLAS call after the cap fails too), then caps
its address space with ``resource.setrlimit(RLIMIT_AS)`` at its current size
plus 200 MiB: sizes up to 128 need a few tens of MiB, 2048 needs about 400 MiB
and fails with PyTorch's real ``DefaultCPUAllocator: can't allocate memory``.
The boundary is also measured directly in the same capped child. The budget
is ``"steps"`` here (8 steps per size) to keep the test fast; the equal-samples
budget is checked in ``test_probe_torch.py``. The Keras variant (TensorFlow's
``ResourceExhaustedError``) is marked slow.

``MALLOC_MMAP_THRESHOLD_`` fixes glibc's mmap threshold so that large blocks
are returned to the OS when freed (by default the threshold grows and freed
activations stay in the heap, so many small steps can use up the cap by
themselves): the failure then belongs to the batch size that asked for it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

pytest.importorskip("torch")
if not sys.platform.startswith("linux"):  # pragma: no cover
    pytest.skip("RLIMIT_AS caps are a Linux test", allow_module_level=True)

CHILD = textwrap.dedent(
    """
    import json, re, resource, sys
    import torch
    from torch import nn
    from torch.utils.data import TensorDataset
    from wandb_batchsize.probe.torch_probe import probe_batch_sizes

    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 16384), nn.ReLU(), nn.Linear(16384, 1))
    x = torch.randn(4096, 16)
    y = 0.5 * x[:, :1] + 0.1 * torch.randn(4096, 1)
    data = TensorDataset(x, y)
    kwargs = dict(verbose=False, log_to_wandb=False)
    # warm up before the cap: threads, autograd engine, allocator, BLAS buffers of the analysis
    probe_batch_sizes(model, data, nn.functional.mse_loss, batch_sizes=[1, 2, 4, 8], steps_per_size=3, **kwargs)

    def vm_bytes():
        return int(re.search(r"VmSize:\\s+(\\d+)", open("/proc/self/status").read()).group(1)) * 1024

    cap = vm_bytes() + 200 * 2**20
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    state = {k: v.clone() for k, v in model.state_dict().items()}

    # the true boundary, one size at a time in this capped process
    fits = {}
    for b in (128, 2048):
        try:
            nn.functional.mse_loss(model(x[:b]), y[:b]).backward()
            fits[b] = True
        except RuntimeError as exc:
            assert "can't allocate memory" in str(exc), exc
            fits[b] = False
        model.zero_grad(set_to_none=True)

    result = probe_batch_sizes(
        model, data, nn.functional.mse_loss, batch_sizes=[16, 32, 64, 128, 2048, 4096],
        budget="steps", steps_per_size=8, **kwargs,
    )
    restored = all(torch.equal(v, state[k]) for k, v in model.state_dict().items())
    # and training goes on at the largest size that fitted, in the same capped process
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)
    for _ in range(3):
        opt.zero_grad(); nn.functional.mse_loss(model(x[:128]), y[:128]).backward(); opt.step()
    print(json.dumps({
        "fits": {str(k): v for k, v in fits.items()},
        "rows": [[r.batch_size, r.status, r.samples, r.note] for r in result.records],
        "K_c": result.K_c, "restored": restored,
    }))
    """
)


def test_a_real_oom_is_recorded_and_skipped_with_the_other_sizes_kept(tmp_path):
    env = {
        **os.environ,
        "MALLOC_MMAP_THRESHOLD_": "131072",
        "OMP_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
    }
    proc = subprocess.run(
        [sys.executable, "-c", CHILD], capture_output=True, text=True, timeout=240, env=env,
        cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    # the boundary measured directly in the capped child: 128 fits, 2048 does not
    assert out["fits"] == {"128": True, "2048": False}
    rows = {b: (status, samples, note) for b, status, samples, note in out["rows"]}
    assert [rows[b][0] for b in (16, 32, 64, 128)] == ["ok"] * 4
    assert [rows[b][1] for b in (16, 32, 64, 128)] == [8 * 16, 8 * 32, 8 * 64, 8 * 128]
    status, samples, note = rows[2048]
    assert status == "oom" and samples == 0
    assert "DefaultCPUAllocator: can't allocate memory" in note
    assert rows[4096][0] == "skipped" and "2048 already ran out of memory" in rows[4096][2]
    assert out["K_c"] in (32.0, 64.0)  # analysed on the four sizes that fitted (ends are 0)
    assert out["restored"] is True


KERAS_CHILD = textwrap.dedent(
    """
    import json, os, re, resource
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    import numpy as np, keras, tensorflow as tf
    from wandb_batchsize.probe.keras_probe import probe_batch_sizes

    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((16,)), keras.layers.Dense(16384, activation="relu"), keras.layers.Dense(1)]
    )
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4096, 16)).astype("float32")
    y = 0.5 * x[:, :1]
    kwargs = dict(verbose=False, log_to_wandb=False, loss="mse")
    probe_batch_sizes(model, x, y, batch_sizes=[1, 2, 4, 8], steps_per_size=3, **kwargs)

    vm = int(re.search(r"VmSize:\\s+(\\d+)", open("/proc/self/status").read()).group(1)) * 1024
    cap = vm + 300 * 2**20
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    before = [np.array(v.numpy(), copy=True) for v in model.variables]
    result = probe_batch_sizes(
        model, x, y, batch_sizes=[16, 32, 64, 128, 2048, 4096], budget="steps",
        steps_per_size=8, **kwargs,
    )
    restored = all(np.array_equal(a, v.numpy()) for a, v in zip(before, model.variables))
    print(json.dumps({
        "rows": [[r.batch_size, r.status, r.note] for r in result.records],
        "K_c": result.K_c, "restored": restored,
    }))
    """
)


@pytest.mark.slow
def test_keras_real_oom_is_recorded_and_skipped(tmp_path):
    pytest.importorskip("tensorflow")
    env = {
        **os.environ,
        "MALLOC_MMAP_THRESHOLD_": "131072",
        "OMP_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
    }
    proc = subprocess.run(
        [sys.executable, "-c", KERAS_CHILD], capture_output=True, text=True, timeout=300,
        env=env, cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    status = {b: s for b, s, _ in out["rows"]}
    assert status == {16: "ok", 32: "ok", 64: "ok", 128: "ok", 2048: "oom", 4096: "skipped"}
    assert "ResourceExhaustedError" in out["rows"][4][2]
    assert out["K_c"] is not None and out["restored"] is True

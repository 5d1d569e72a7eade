"""Ctrl-C twice in quick succession, at 20 timings across a search: the state is exact each time.

A child process runs ``find_batch_size`` 20 times; a timer thread sends the
process two SIGINTs (0.2 - 3 ms apart) at a different moment of each run,
spread over the whole search, its confirmation steps and its restores. After
each run (interrupted or not) the weights, buffers, gradients and the
optimizer's state and hyper-parameters must be bitwise what they were.
The OOMs come from a simulated budget; what is tested is the restore.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(sys.platform.startswith("win"), reason="POSIX signals")

CHILD = textwrap.dedent(
    """
    import hashlib, json, os, random, signal, sys, threading, time
    import torch
    from torch import nn
    from wandb_batchsize import find_batch_size

    torch.set_num_threads(1)

    class Budget(nn.Module):
        def forward(self, x):
            if x.shape[0] > 120:
                raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 1 GiB")
            return x

    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Linear(256, 1024), nn.BatchNorm1d(1024), nn.ReLU(), Budget(), nn.Linear(1024, 256),
        nn.Linear(256, 1024), nn.Linear(1024, 10),
    )
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.1)
    x, y = torch.randn(16, 256), torch.randint(0, 10, (16,))
    for _ in range(2):
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    nn.functional.cross_entropy(model(x), y).backward()  # gradients left in place
    sample = (x, y)

    def raw(t):
        return t.detach().reshape(-1).contiguous().view(torch.uint8).numpy()

    def digest():
        h = hashlib.sha256()
        for k, v in model.state_dict().items():
            h.update(k.encode()); h.update(raw(v))
        for p in model.parameters():
            h.update(b"g" if p.grad is None else raw(p.grad))
        for p, s in opt.state.items():
            for k, v in sorted(s.items()):
                h.update(k.encode())
                if torch.is_tensor(v):
                    h.update(raw(v))
                else:
                    h.update(repr(v).encode())
        h.update(repr([{k: v for k, v in g.items() if k != "params"}
                       for g in opt.param_groups]).encode())
        h.update(repr([m.training for m in model.modules()]).encode())
        return h.hexdigest()

    def search():
        find_batch_size(model, sample, optimizer=opt, verbose=False, log_to_wandb=False)

    original = digest()
    t0 = time.perf_counter()
    search()
    duration = time.perf_counter() - t0
    assert digest() == original
    rng = random.Random(0)
    runs = []
    for i in range(20):
        at = duration * (0.03 + 0.97 * i / 19)
        gap = rng.uniform(0.0002, 0.003)
        def fire():
            time.sleep(at)
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(gap)
            os.kill(os.getpid(), signal.SIGINT)
        timer = threading.Thread(target=fire)
        interrupted = False
        timer.start()
        try:
            try:
                search()
            except KeyboardInterrupt:
                interrupted = True
            while timer.is_alive():  # a late second signal must not leak into the next run
                time.sleep(0.001)
        except KeyboardInterrupt:
            interrupted = True
        while True:
            try:
                timer.join()
                time.sleep(0.01)
                break
            except KeyboardInterrupt:
                interrupted = True
        runs.append({"at": at, "gap": gap, "interrupted": interrupted,
                     "same": digest() == original})
    print(json.dumps({"duration": duration, "runs": runs}))
    """
)


@pytest.mark.timeout(240)
def test_double_sigint_at_20_timings_leaves_the_state_bitwise_equal(tmp_path):
    script = tmp_path / "interrupt_child.py"
    script.write_text(CHILD)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "WANDB_MODE": "disabled", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=200
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    runs = report["runs"]
    assert len(runs) == 20
    bad = [r for r in runs if not r["same"]]
    assert not bad, bad
    # the signals landed inside the searches (not all after them)
    assert sum(r["interrupted"] for r in runs) >= 15, runs

"""Two ranks (gloo, CPU) with different real memory caps agree on one batch size.

Rank 0 gets the smaller address-space cap, so at some probed sizes only rank 0
runs out of memory while rank 1 fits: the ranks must still take the same next
step (no deadlock; the whole run is under a timeout), end on the same result,
and that result must be the smaller rank's ceiling. The caps (64 and 160 MiB)
leave room for the confirmation steps after the search: at 48 MiB, rank 0
sometimes could not create a oneDNN primitive even at batch 2 after it
(a real condition the confirmation now reports as NoBatchSizeFitsError).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="RLIMIT_AS and /proc are Linux features"
)

CHILD = textwrap.dedent(
    """
    import json, os, resource, sys
    import torch
    import torch.distributed as dist
    import torch.multiprocessing as mp

    CAPS_MB = {0: 64, 1: 160}

    def vm_size():
        for line in open("/proc/self/status"):
            if line.startswith("VmSize"):
                return int(line.split()[1]) * 1024

    def worker(rank, port, out_dir):
        torch.set_num_threads(1)
        dist.init_process_group(
            "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2
        )
        torch.manual_seed(0)
        net = torch.nn.Sequential(
            torch.nn.Linear(16, 1024), torch.nn.GELU(), torch.nn.Linear(1024, 10)
        )
        model = torch.nn.parallel.DistributedDataParallel(net)
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        x, y = torch.randn(8, 32, 16), torch.randint(0, 10, (8, 32))
        for b in range(2, 18):  # warm-up: allocator and kernel caches
            idx = torch.arange(b) % 8
            out = net(x[idx])
            torch.nn.functional.cross_entropy(out.reshape(-1, 10), y[idx].reshape(-1)).backward()
        net.zero_grad(set_to_none=True)
        dist.barrier()
        soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        resource.setrlimit(resource.RLIMIT_AS, (vm_size() + CAPS_MB[rank] * 2**20, hard))
        from wandb_batchsize import find_batch_size

        def loss_fn(out, target):
            return torch.nn.functional.cross_entropy(out.reshape(-1, 10), target.reshape(-1))

        result = find_batch_size(
            model, (x, y), optimizer=opt, loss_fn=loss_fn, verbose=False, log_to_wandb=False
        )
        report = {
            "rank": rank,
            "max_fitting": result.max_fitting,
            "first_failing": result.first_failing,
            "batch_size": result.batch_size,
            "world_size": result.world_size,
            "probes": [[p.batch_size, p.fitted, p.error] for p in result.probes],
        }
        with open(os.path.join(out_dir, f"rank{rank}.json"), "w") as fh:
            json.dump(report, fh)
        dist.barrier()
        dist.destroy_process_group()

    if __name__ == "__main__":
        port, out_dir = int(sys.argv[1]), sys.argv[2]
        mp.spawn(worker, args=(port, out_dir), nprocs=2, join=True)
    """
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.timeout(240)
def test_ranks_agree_on_the_minimum_without_hanging(tmp_path):
    script = tmp_path / "ddp_child.py"
    script.write_text(CHILD)
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "MALLOC_ARENA_MAX": "1",
        "MALLOC_MMAP_THRESHOLD_": "131072",
        "ONEDNN_PRIMITIVE_CACHE_CAPACITY": "0",
        "OMP_NUM_THREADS": "1",
        "WANDB_MODE": "disabled",
    }
    proc = subprocess.run(
        [sys.executable, str(script), str(_free_port()), str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=200,  # a hang fails here instead of stalling the suite
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    r0 = json.loads((tmp_path / "rank0.json").read_text())
    r1 = json.loads((tmp_path / "rank1.json").read_text())
    assert r0["world_size"] == r1["world_size"] == 2
    for key in ("max_fitting", "first_failing", "batch_size"):
        assert r0[key] == r1[key], key
    # the same sizes in the same order, with the same agreed outcome on both ranks
    assert [p[:2] for p in r0["probes"]] == [p[:2] for p in r1["probes"]]
    # only rank 0 (the smaller cap) ran out of memory at some probed size
    assert any(err == "out of memory on another rank" for _, _, err in r1["probes"]), r1
    assert all(err != "out of memory on another rank" for _, _, err in r0["probes"]), r0
    # rank 1 alone has ~2.5x the budget: the agreed ceiling is rank 0's
    assert r0["first_failing"] is not None and r0["max_fitting"] < 200, r0


ERROR_CHILD = textwrap.dedent(
    """
    import json, os, sys, time
    import torch
    import torch.distributed as dist
    import torch.multiprocessing as mp

    class FailsOnRank1(torch.nn.Module):
        def __init__(self, rank):
            super().__init__()
            self.rank = rank
            self.net = torch.nn.Linear(16, 10)

        def forward(self, x):
            if self.rank == 1 and x.shape[0] >= 32:
                raise ValueError("bad batch on rank 1")
            return self.net(x)

    def worker(rank, port, out_dir):
        torch.set_num_threads(1)
        dist.init_process_group(
            "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2
        )
        from wandb_batchsize import find_batch_size
        from wandb_batchsize.memory import PeerError

        model = torch.nn.parallel.DistributedDataParallel(FailsOnRank1(rank))
        sample = (torch.randn(4, 16), torch.randint(0, 10, (4,)))
        report = {"rank": rank}
        try:
            find_batch_size(model, sample, verbose=False, log_to_wandb=False)
            report["error"] = None
        except (ValueError, PeerError) as exc:
            report["error"] = type(exc).__name__
        report["raised_at"] = time.time()
        with open(os.path.join(out_dir, f"rank{rank}.json"), "w") as fh:
            json.dump(report, fh)
        if rank == 1:  # stay alive (no process-group teardown) until rank 0 has reported
            deadline = time.time() + 60
            while not os.path.exists(os.path.join(out_dir, "rank0.json")):
                if time.time() > deadline:
                    break
                time.sleep(0.1)

    if __name__ == "__main__":
        port, out_dir = int(sys.argv[1]), sys.argv[2]
        mp.spawn(worker, args=(port, out_dir), nprocs=2, join=True)
    """
)


@pytest.mark.timeout(240)
def test_a_non_oom_error_on_one_rank_reaches_the_other_within_seconds(tmp_path):
    script = tmp_path / "ddp_error_child.py"
    script.write_text(ERROR_CHILD)
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "OMP_NUM_THREADS": "1",
        "WANDB_MODE": "disabled",
    }
    proc = subprocess.run(
        [sys.executable, str(script), str(_free_port()), str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=200,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    r0 = json.loads((tmp_path / "rank0.json").read_text())
    r1 = json.loads((tmp_path / "rank1.json").read_text())
    assert r1["error"] == "ValueError"  # the rank's own error, unchanged
    assert r0["error"] == "PeerError"
    assert r0["raised_at"] - r1["raised_at"] < 10, (r0, r1)

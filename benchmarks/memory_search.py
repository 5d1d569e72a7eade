"""Memory-ceiling search, side by side, under a real memory cap (CPU, RLIMIT_AS).

    python benchmarks/memory_search.py                 # all methods, writes BENCHMARKS.md
    python benchmarks/memory_search.py --no-write      # print only
    python benchmarks/memory_search.py child --framework torch --method ours --cap-mb 96

Each method runs in a fresh child process: build the model, run one warm-up
step, cap the address space (``RLIMIT_AS`` = current size + the cap), then
search. The same child then finds the true maximum with an independent
exhaustive scan (doubling, bisection to the exact boundary, and a re-check of
the boundary's two sides) — a plain loop that shares no code with the search.

Methods:
- ``ours``: ``wandb_batchsize.find_batch_size`` (memory readings from /proc);
- ``ours-noreadings``: the same strategy with the readings switched off
  (doubling + bisection to the 2 % tolerance, the seed's algorithm);
- ``lightning``: ``Tuner.scale_batch_size(mode="binsearch")`` (init_val=2,
  its default steps_per_trial=3 and max_trials=25);
- ``accelerate``: ``accelerate.utils.find_executable_batch_size`` starting at
  4096 (the top of our range), and at its default 128.

Under ``RLIMIT_AS`` the capacity of a process depends on its history unless
the allocators give address space back: glibc's dynamic mmap threshold moves
large tensors onto the heap, whose address space is never returned, and
oneDNN keeps a JIT-compiled primitive per new shape. Without the settings in
``ENV`` (a fixed ``MALLOC_MMAP_THRESHOLD_``, one malloc arena, oneDNN's
primitive cache off) the true maximum halves after a dozen probes, for every
method. With them, and after warm-up steps at 16 small batch sizes before the
cap, the address space used between steps stays flat and "the true maximum"
is well defined. ``TF_ENABLE_ONEDNN_OPTS=0`` makes TensorFlow raise
``ResourceExhaustedError`` at the cap instead of aborting (``std::bad_alloc``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ENV = {
    "MALLOC_ARENA_MAX": "1",
    "MALLOC_MMAP_THRESHOLD_": "131072",
    "ONEDNN_PRIMITIVE_CACHE_CAPACITY": "0",
    "TF_ENABLE_ONEDNN_OPTS": "0",
    "TF_CPP_MIN_LOG_LEVEL": "3",
    "CUDA_VISIBLE_DEVICES": "",
    "OMP_NUM_THREADS": "1",
    "WANDB_MODE": "disabled",
    "KINETO_LOG_LEVEL": "5",
}
CAPS_MB = {"torch": 192, "keras": 192}
WARMUP_SHAPES = 16
MIN_BS, MAX_BS = 2, 4096


# -- the child ----------------------------------------------------------------------


def _vm_size() -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmSize"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmSize in /proc/self/status")


def _cap(mb: float) -> None:
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    resource.setrlimit(resource.RLIMIT_AS, (_vm_size() + int(mb * 2**20), hard))


SEQ, FEATURES, HIDDEN = 32, 16, 1024


class TorchTask:
    """A token-wise MLP (32 tokens x 16 features -> 1024 -> 10, mean over tokens).

    Activations dominate its memory (about 0.6 MiB a sample against 0.1 MiB of
    weights): the CPU snapshot of weights and optimizer state that the search
    holds is negligible next to the cap.
    """

    def __init__(self) -> None:
        import torch
        from torch import nn

        torch.manual_seed(0)
        torch.set_num_threads(1)
        self.torch, self.nn = torch, nn

        class TokenMLP(nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.body = nn.Sequential(
                    nn.Linear(FEATURES, HIDDEN), nn.GELU(), nn.Dropout(0.1), nn.Linear(HIDDEN, 10)
                )

            def forward(self, x):
                return self.body(x).mean(dim=1)

        self.model = TokenMLP()
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=1e-3)
        self.sample = (torch.randn(8, SEQ, FEATURES), torch.randint(0, 10, (8,)))

    def batch(self, b: int):
        g = self.torch.Generator().manual_seed(b)
        return (
            self.torch.randn(b, SEQ, FEATURES, generator=g),
            self.torch.randint(0, 10, (b,), generator=g),
        )

    def step(self, b: int) -> None:
        x, y = self.batch(b)
        loss = self.nn.functional.cross_entropy(self.model(x), y)
        loss.backward()
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)

    def is_oom(self, exc: BaseException) -> bool:
        # independent of our table: the CPU allocator's and oneDNN's own wordings
        text = str(exc).strip()
        return isinstance(exc, RuntimeError) and (
            "can't allocate memory" in text or text == "could not create a primitive"
        )

    def release(self) -> None:
        import gc

        self.optimizer.zero_grad(set_to_none=True)
        gc.collect()


class KerasTask:
    """The same token-wise MLP in Keras, compiled with Adam."""

    def __init__(self) -> None:
        import keras
        import numpy as np
        import tensorflow as tf

        tf.config.threading.set_inter_op_parallelism_threads(1)
        tf.config.threading.set_intra_op_parallelism_threads(1)
        keras.utils.set_random_seed(0)
        self.np, self.tf = np, tf
        self.model = keras.Sequential(
            [
                keras.Input((SEQ, FEATURES)),
                keras.layers.Dense(HIDDEN, activation="gelu"),
                keras.layers.Dropout(0.1),
                keras.layers.Dense(10),
                keras.layers.GlobalAveragePooling1D(),
            ]
        )
        self.model.compile(
            optimizer=keras.optimizers.Adam(1e-3),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        )
        rng = np.random.default_rng(0)
        self.sample = (
            rng.standard_normal((8, SEQ, FEATURES), dtype=np.float32),
            rng.integers(0, 10, 8).astype("int32"),
        )

    def batch(self, b: int):
        rng = self.np.random.default_rng(b)
        return (
            rng.standard_normal((b, SEQ, FEATURES), dtype=self.np.float32),
            rng.integers(0, 10, b).astype("int32"),
        )

    def step(self, b: int) -> None:
        x, y = self.batch(b)
        self.model.train_on_batch(x, y)

    def is_oom(self, exc: BaseException) -> bool:
        return isinstance(exc, self.tf.errors.ResourceExhaustedError)

    def release(self) -> None:
        import gc

        gc.collect()


def exhaustive_scan(task, lo_start: int = MIN_BS, hi_limit: int = MAX_BS) -> dict:
    """The true maximum by a plain loop: doubling, exact bisection, boundary re-check."""

    log: list[tuple[int, bool]] = []

    def fits(b: int) -> bool:
        try:
            task.step(b)
            ok = True
        except Exception as exc:
            if not task.is_oom(exc):
                raise
            ok = False
        task.release()
        log.append((b, ok))
        return ok

    trials = 0
    lo, hi = None, None
    b = lo_start
    while b <= hi_limit:
        trials += 1
        if fits(b):
            lo = b
            b *= 2
        else:
            hi = b
            break
    if lo is None:
        return {"true_max": 0, "scan_trials": trials, "scan_trace": log}
    if hi is None:
        return {"true_max": lo, "scan_trials": trials, "capped_by_range": True, "scan_trace": log}
    while hi - lo > 1:
        mid = (lo + hi) // 2
        trials += 1
        if fits(mid):
            lo = mid
        else:
            hi = mid
    # re-check both sides of the boundary, and the next two sizes up
    for _ in range(2):
        trials += 3
        if not fits(lo):
            lo -= 1
        if fits(lo + 1) or fits(lo + 2):
            lo += 1
    return {"true_max": lo, "scan_trials": trials, "scan_trace": log}


def run_ours(task, readings: bool = True) -> dict:
    if not readings:
        os.environ["WANDB_BATCHSIZE_NO_PROCESS_METER"] = "1"
    from wandb_batchsize.memory import find_batch_size

    optimizer = getattr(task, "optimizer", None)
    t0 = time.perf_counter()
    result = find_batch_size(
        task.model,
        task.sample,
        optimizer=optimizer,
        min_batch_size=MIN_BS,
        max_batch_size=MAX_BS,
        verbose=False,
        log_to_wandb=False,
    )
    seconds = time.perf_counter() - t0
    return {
        "found": result.max_fitting,
        "batch_size": result.batch_size,
        "probes": len(result.probes),
        "ooms": result.oom_events,
        "seconds": seconds,
        "predicted": result.predicted,
        "trace": [(p.batch_size, p.fitted) for p in result.probes],
    }


def run_lightning(task) -> dict:
    import lightning.pytorch as pl
    import torch
    from lightning.pytorch.tuner import Tuner
    from lightning.pytorch.tuner import batch_size_scaling as bss

    class Data(torch.utils.data.Dataset):
        def __len__(self) -> int:
            return 1 << 20

        def __getitem__(self, i):
            g = torch.Generator().manual_seed(i)
            x = torch.randn(SEQ, FEATURES, generator=g)
            return x, int(torch.randint(0, 10, (1,), generator=g))

    class Module(pl.LightningModule):
        def __init__(self, net) -> None:
            super().__init__()
            self.net = net
            self.batch_size = MIN_BS

        def training_step(self, batch, _):
            x, y = batch
            return torch.nn.functional.cross_entropy(self.net(x), y)

        def configure_optimizers(self):
            return torch.optim.Adam(self.parameters(), lr=1e-3)

        def train_dataloader(self):
            return torch.utils.data.DataLoader(Data(), batch_size=self.batch_size)

    trace: list[tuple[int, bool]] = []
    original = bss._try_loop_run

    def counted(trainer, params):
        size = trainer.lightning_module.batch_size
        try:
            original(trainer, params)
        except RuntimeError:
            trace.append((size, False))
            raise
        trace.append((size, True))

    bss._try_loop_run = counted
    module = Module(task.model)
    root = Path(os.environ.get("BENCH_TMP", "/tmp")) / "lightning"
    trainer = pl.Trainer(
        accelerator="cpu",
        devices=1,
        max_epochs=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=str(root),
    )
    t0 = time.perf_counter()
    tuned = Tuner(trainer).scale_batch_size(
        module, mode="binsearch", init_val=MIN_BS, max_trials=25, max_val=MAX_BS
    )
    seconds = time.perf_counter() - t0
    fitted = [b for b, ok in trace if ok]
    return {
        "found": max(fitted) if fitted else 0,
        "batch_size": tuned,
        "probes": len(trace),
        "ooms": sum(1 for _, ok in trace if not ok),
        "seconds": seconds,
        "trace": trace,
    }


def run_accelerate(task, start: int) -> dict:
    from accelerate.utils import find_executable_batch_size

    trace: list[tuple[int, bool]] = []

    @find_executable_batch_size(starting_batch_size=start)
    def train(batch_size):
        try:
            task.step(batch_size)
        except RuntimeError:
            trace.append((batch_size, False))
            task.release()
            raise
        trace.append((batch_size, True))
        return batch_size

    t0 = time.perf_counter()
    found = train()
    seconds = time.perf_counter() - t0
    return {
        "found": found,
        "batch_size": found,
        "probes": len(trace),
        "ooms": sum(1 for _, ok in trace if not ok),
        "seconds": seconds,
        "trace": trace,
    }


def child(framework: str, method: str, cap_mb: float, train_steps: int) -> dict:
    task = TorchTask() if framework == "torch" else KerasTask()
    for b in range(MIN_BS, MIN_BS + WARMUP_SHAPES):
        task.step(b)
    task.release()
    if method == "lightning":
        import lightning.pytorch  # noqa: F401 - imported before the cap, like the others' imports
    if method.startswith("ours"):
        import wandb_batchsize.memory.finder  # noqa: F401
        from wandb_batchsize.backends import host_memory  # noqa: F401

        if framework == "torch":
            import wandb_batchsize.backends.torch  # noqa: F401
        else:
            import wandb_batchsize.backends.keras  # noqa: F401
    if method.startswith("accelerate"):
        import accelerate.utils  # noqa: F401
    _cap(cap_mb)
    # TensorFlow keeps ~4 MiB more after its first OOM (error-path state, once per
    # process): take that hit before the method runs, so the method and the scan
    # below see the same capacity.
    try:
        task.step(MAX_BS)
    except Exception as exc:
        if not task.is_oom(exc):
            raise
    task.release()
    if method == "ours":
        out = run_ours(task)
    elif method == "ours-noreadings":
        out = run_ours(task, readings=False)
    elif method == "lightning":
        out = run_lightning(task)
    elif method == "accelerate-4096":
        out = run_accelerate(task, 4096)
    elif method == "accelerate-128":
        out = run_accelerate(task, 128)
    elif method == "scan":
        out = {}
    else:
        raise SystemExit(f"unknown method {method}")
    out["framework"], out["method"], out["cap_mb"] = framework, method, cap_mb
    if train_steps and out.get("batch_size"):
        t0 = time.perf_counter()
        done = 0
        try:
            for _ in range(train_steps):
                task.step(out["batch_size"])
                done += 1
            out["train_ok"] = True
        except Exception as exc:
            if not task.is_oom(exc):
                raise
            out["train_ok"] = False
            out["train_error"] = str(exc)[:200]
        task.release()
        out["train_steps"] = done
        out["train_seconds"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    out.update(exhaustive_scan(task))
    out["scan_seconds"] = time.perf_counter() - t0
    return out


def run_child(
    framework: str, method: str, cap_mb: float, train_steps: int = 0, timeout: float = 600
) -> dict:
    """Run one capped child and return its JSON report."""
    env = {**os.environ, **ENV, "PYTHONPATH": str(ROOT)}
    cmd = [
        sys.executable,
        str(Path(__file__).resolve()),
        "child",
        "--framework",
        framework,
        "--method",
        method,
        "--cap-mb",
        str(cap_mb),
        "--train-steps",
        str(train_steps),
    ]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    raise RuntimeError(
        f"child {framework}/{method} failed (rc={proc.returncode}):\n"
        f"{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
    )


# -- the report --------------------------------------------------------------------------


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    import torch

    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (
        f"{cpu}, {os.cpu_count()} cores, {mem:.0f} GiB RAM, Linux {platform.release()}, "
        f"Python {platform.python_version()}, torch {torch.__version__}"
    )


def table(rows: list[dict]) -> list[str]:
    lines = [
        "| model | method | probes | OOM events | seconds | found | true max | found / true |"
        " trained batch | 20 steps at it |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        ratio = r["found"] / r["true_max"] if r.get("true_max") else float("nan")
        lines.append(
            f"| {r['framework']} | {r['method']} | {r['probes']} | {r['ooms']} | "
            f"{r['seconds']:.2f} | {r['found']} | {r['true_max']} | {ratio:.1%} | "
            f"{r.get('batch_size', '')} | {'ran' if r.get('train_ok') else 'OOM'} |"
        )
    return lines


def write_section(text: str, path: Path = ROOT / "BENCHMARKS.md") -> None:
    """Replace the "## Memory search" section of BENCHMARKS.md (create the file if missing)."""
    title = "## Memory search"
    if path.exists():
        doc = path.read_text()
    else:
        doc = "# Benchmarks\n\nFigures produced by the scripts in `benchmarks/`.\n"
    start = doc.find(title + "\n")
    if start < 0:
        doc = doc.rstrip("\n") + "\n\n" + text.rstrip("\n") + "\n"
    else:
        nxt = doc.find("\n## ", start + len(title))
        end = len(doc) if nxt < 0 else nxt + 1
        doc = doc[:start] + text.rstrip("\n") + "\n" + ("\n" + doc[end:] if nxt >= 0 else "")
    path.write_text(doc)


METHODS = {
    "torch": ["ours", "ours-noreadings", "lightning", "accelerate-4096", "accelerate-128"],
    "keras": ["ours", "ours-noreadings"],
}


def render(rows: list[dict], total_seconds: float) -> str:
    """The BENCHMARKS.md section for these child reports."""
    lines = [
        "## Memory search",
        "",
        "`python benchmarks/memory_search.py` — the largest trainable batch under a real memory "
        "cap: a child process per method caps its address space (`RLIMIT_AS` = size after the "
        f"model build + {CAPS_MB['torch']} MiB) and searches batch sizes {MIN_BS}..{MAX_BS}; "
        "the same child then finds the true maximum by an exhaustive scan (doubling, exact "
        'bisection, re-check of the boundary). "found" is the largest size the method saw '
        'fit, before any safety factor; "trained batch" is the size it hands to training '
        "(ours: x0.9, rounded to a multiple of 8; Lightning: its own 5 % margin), and 20 "
        "training steps at it ran in the same child. The model is a token-wise MLP (32 tokens "
        "x 16 features -> 1024 -> 10), the same in PyTorch and Keras, Adam.",
        "",
        f"Machine: {machine()}. CPU only (no GPU was available for this run: the CUDA path, "
        "with allocator peak readings, was not measured here).",
        "",
        *table(rows),
        "",
        "Accelerate's `find_executable_batch_size` only goes down (x0.9 per OOM) from its "
        "starting size: from 4096 it pays one OOM per step; from its default 128 it stops at "
        "128 when that fits. Lightning's binsearch runs 3 steps per trial through its fit loop "
        "and writes a checkpoint to disk to restore the model. Lightning and Accelerate are "
        "PyTorch-only, so the Keras rows compare our search with and without memory readings "
        "(without readings it is the seed's doubling + bisection, stopped at 2 %).",
        "",
        'Setup that makes "the true maximum" well defined under `RLIMIT_AS` (the children\'s '
        "environment, not the library's): `MALLOC_MMAP_THRESHOLD_=131072` and "
        "`MALLOC_ARENA_MAX=1` (otherwise glibc moves large tensors onto a heap whose address "
        "space is never returned, and the capacity halves after a dozen probes, for every "
        "method), `ONEDNN_PRIMITIVE_CACHE_CAPACITY=0` (oneDNN keeps ~0.6 MiB per new shape), "
        "`TF_ENABLE_ONEDNN_OPTS=0` (TensorFlow's oneDNN kernels abort with `std::bad_alloc` "
        "at the cap instead of raising), warm-up steps at 16 small batch sizes before the cap, "
        "and one deliberate OOM right after it (TensorFlow keeps ~4 MiB after its first).",
        "",
        f"Total benchmark wall time: {total_seconds:.0f} s. Timings on a shared 2-core "
        "machine; compare rows of one run.",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd")
    c = sub.add_parser("child")
    c.add_argument("--framework", choices=["torch", "keras"], required=True)
    c.add_argument("--method", required=True)
    c.add_argument("--cap-mb", type=float, required=True)
    c.add_argument("--train-steps", type=int, default=0)
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--from-jsonl", help="render the section from saved child reports")
    parser.add_argument("--seconds", type=float, default=float("nan"), help="with --from-jsonl")
    args = parser.parse_args(argv)
    if args.cmd == "child":
        print(json.dumps(child(args.framework, args.method, args.cap_mb, args.train_steps)))
        return 0
    if args.from_jsonl:
        lines_in = Path(args.from_jsonl).read_text().splitlines()
        rows = [json.loads(x) for x in lines_in if x.startswith("{")]
        total = args.seconds
    else:
        rows = []
        t0 = time.time()
        for framework, names in METHODS.items():
            for name in names:
                for _ in range(args.repeats):
                    r = run_child(framework, name, CAPS_MB[framework], train_steps=20)
                    rows.append(r)
                    print(json.dumps(r), flush=True)
        total = time.time() - t0
    text = render(rows, total)
    print(text)
    if not args.no_write:
        write_section(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

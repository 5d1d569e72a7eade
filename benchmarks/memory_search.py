"""Memory-ceiling search, side by side, under a real memory cap (CPU, RLIMIT_AS).

    python benchmarks/memory_search.py                 # all, writes benchmarks/results/memory.md
    python benchmarks/memory_search.py --tasks gpt2 cnn --no-write   # print only
    python benchmarks/memory_search.py child --framework torch --method ours --cap-mb 96

Each method runs in a fresh child process: build the model, run one warm-up
step, cap the address space (``RLIMIT_AS`` = current size + the cap), then
search. The same child then finds the true maximum with an independent
exhaustive scan (doubling, bisection to the exact boundary, and a re-check of
the boundary's two sides) — a plain loop that shares no code with the search.

Tasks (``memory_tasks.py``): a token-wise MLP (PyTorch and Keras), a tiny
GPT-2 built from ``transformers.GPT2Config``, a small CNN, a conv + attention
model. Methods (``memory_methods.py``): ours (with and without readings),
Lightning's ``binsearch``, Accelerate's ``find_executable_batch_size``.
After each method's search the child trains 20 steps at the size the method
returned ("did 20 steps at it run?").

A second table runs the same methods with the *default* allocator settings
(none of the ``MALLOC_*``/oneDNN variables below): there the true maximum
depends on the process's history, so it is not reported; what matters is
whether the returned size still trains right after the search.

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
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from memory_methods import (  # noqa: E402
    MAX_BS,
    MIN_BS,
    exhaustive_scan,
    run_accelerate,
    run_lightning,
    run_ours,
)
from memory_report import render  # noqa: E402
from memory_tasks import FRAMEWORK, TASKS  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
#: the settings that make "the true maximum" well defined under RLIMIT_AS
STABLE_ALLOCATOR = {
    "MALLOC_ARENA_MAX": "1",
    "MALLOC_MMAP_THRESHOLD_": "131072",
    "ONEDNN_PRIMITIVE_CACHE_CAPACITY": "0",
}
ENV = {
    **STABLE_ALLOCATOR,
    "TF_ENABLE_ONEDNN_OPTS": "0",
    "TF_CPP_MIN_LOG_LEVEL": "3",
    "CUDA_VISIBLE_DEVICES": "",
    "OMP_NUM_THREADS": "1",
    "WANDB_MODE": "disabled",
    "KINETO_LOG_LEVEL": "5",
    "TRANSFORMERS_NO_ADVISORY_WARNINGS": "1",
    "HF_HUB_OFFLINE": "1",
}
CAPS_MB = {"torch": 192, "keras": 192, "gpt2": 192, "cnn": 192, "convattn": 256}
WARMUP_SHAPES = 16
METHODS = {
    "torch": ["ours", "ours-noreadings", "lightning", "accelerate-4096", "accelerate-128"],
    "keras": ["ours", "ours-noreadings"],
    "gpt2": ["ours", "lightning", "accelerate-4096"],
    "cnn": ["ours", "lightning", "accelerate-4096"],
}
DEFAULT_ALLOCATOR_METHODS = {
    "convattn": ["ours", "ours-unconfirmed", "lightning", "accelerate-4096"]
}


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


def _one_arena() -> None:
    """``mallopt(M_ARENA_MAX, 1)``: no per-thread glibc arenas (``BENCH_ONE_ARENA=1``).

    Each arena reserves 64 MiB of address space that ``RLIMIT_AS`` counts
    although it is never used; with TensorFlow's threads that makes the
    capacity of even a fresh process random (seen: 328 trained 20 steps, 250
    failed at step 3). The mmap threshold stays dynamic, as by default.
    """
    import ctypes
    import ctypes.util

    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    libc.mallopt(-8, 1)  # M_ARENA_MAX


def _preimport(framework: str, method: str) -> None:
    """Import what the method needs before the cap, as every method's imports are."""
    if method == "lightning":
        import lightning.pytorch  # noqa: F401
    if method.startswith("ours"):
        import wandb_batchsize.memory.finder  # noqa: F401
        from wandb_batchsize.backends import host_memory  # noqa: F401

        if framework == "keras":
            import wandb_batchsize.backends.keras  # noqa: F401
        else:
            import wandb_batchsize.backends.torch  # noqa: F401
    if method.startswith("accelerate"):
        import accelerate.utils  # noqa: F401


def _run_method(task, method: str) -> dict:
    if method == "ours":
        return run_ours(task)
    if method == "ours-noreadings":
        return run_ours(task, readings=False)
    if method == "ours-unconfirmed":
        return run_ours(task, confirm_steps=0)
    if method.startswith("ours-confirm"):  # ours-confirm20: 20 confirmation steps
        return run_ours(task, confirm_steps=int(method.removeprefix("ours-confirm")))
    if method == "lightning":
        return run_lightning(task)
    if method.startswith("accelerate-"):
        return run_accelerate(task, int(method.split("-", 1)[1]))
    if method == "scan":
        return {}
    if method.startswith("fixed-"):  # no search: train at a given size in a fresh process
        size = int(method.split("-", 1)[1])
        return {"found": size, "batch_size": size, "probes": 0, "ooms": 0, "seconds": 0.0}
    raise SystemExit(f"unknown method {method}")


def _train(task, batch_size: int, steps: int) -> dict:
    t0 = time.perf_counter()
    done, out = 0, {}
    try:
        for _ in range(steps):
            task.step(batch_size)
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
    return out


def child(framework: str, method: str, cap_mb: float, train_steps: int, scan: bool = True) -> dict:
    if os.environ.get("BENCH_ONE_ARENA"):
        _one_arena()
    task = TASKS[framework]()
    for b in range(MIN_BS, MIN_BS + WARMUP_SHAPES):
        task.step(b)
    task.release()
    _preimport(FRAMEWORK.get(framework, "torch"), method)
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
    out = {"framework": framework, "model": task.name, "method": method, "cap_mb": cap_mb}
    try:
        out.update(_run_method(task, method))
    except Exception as exc:  # a method that crashes on an error it does not recognise
        out.update(crashed=f"{type(exc).__name__}: {str(exc)[:160]}", found=0, probes=0, ooms=0)
        out["seconds"] = float("nan")
        task.release()
    if train_steps and out.get("batch_size"):
        out.update(_train(task, out["batch_size"], train_steps))
    if scan:
        t0 = time.perf_counter()
        out.update(exhaustive_scan(task))
        out["scan_seconds"] = time.perf_counter() - t0
    return out


def run_child(
    framework: str,
    method: str,
    cap_mb: float,
    train_steps: int = 0,
    timeout: float = 600,
    *,
    default_allocator: bool = False,
    scan: bool = True,
    one_arena: bool = False,
) -> dict:
    """Run one capped child and return its JSON report.

    ``default_allocator`` leaves glibc's and oneDNN's settings at their
    defaults (no ``MALLOC_*`` variables: they are removed from the child's
    environment too); ``one_arena`` then only turns glibc's per-thread arenas
    off (:func:`_one_arena`); ``scan=False`` skips the exhaustive scan.
    """
    env = {**os.environ, **ENV, "PYTHONPATH": str(ROOT)}
    if one_arena:
        env["BENCH_ONE_ARENA"] = "1"
    if default_allocator:
        for var in [*STABLE_ALLOCATOR, *(v for v in env if v.startswith("MALLOC_"))]:
            env.pop(var, None)
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
        *([] if scan else ["--no-scan"]),
    ]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith("{"):
            report = json.loads(line)
            report["default_allocator"] = default_allocator
            return report
    raise RuntimeError(
        f"child {framework}/{method} failed (rc={proc.returncode}):\n"
        f"{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
    )


RESULTS = ROOT / "benchmarks" / "results" / "memory.md"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd")
    c = sub.add_parser("child")
    c.add_argument("--framework", choices=sorted(TASKS), required=True)
    c.add_argument("--method", required=True)
    c.add_argument("--cap-mb", type=float, required=True)
    c.add_argument("--train-steps", type=int, default=0)
    c.add_argument("--no-scan", action="store_true")
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--tasks", nargs="*", default=None, help="tasks to run (default all)")
    parser.add_argument("--no-default-allocator", action="store_true")
    parser.add_argument("--from-jsonl", help="render the report from saved child reports")
    parser.add_argument("--seconds", type=float, default=float("nan"), help="with --from-jsonl")
    args = parser.parse_args(argv)
    if args.cmd == "child":
        report = child(args.framework, args.method, args.cap_mb, args.train_steps, not args.no_scan)
        print(json.dumps(report))
        return 0
    if args.from_jsonl:
        lines_in = Path(args.from_jsonl).read_text().splitlines()
        rows = [json.loads(x) for x in lines_in if x.startswith("{")]
        total = args.seconds
    else:
        rows = []
        t0 = time.time()
        plan = [(t, m, False) for t, ms in METHODS.items() for m in ms]
        if not args.no_default_allocator:
            plan += [(t, m, True) for t, ms in DEFAULT_ALLOCATOR_METHODS.items() for m in ms]
        for task, method, default in plan:
            if args.tasks and task not in args.tasks:
                continue
            r = run_child(
                task,
                method,
                CAPS_MB[task],
                train_steps=20,
                default_allocator=default,
                scan=not default,
            )
            rows.append(r)
            print(json.dumps(r), flush=True)
        total = time.time() - t0
    text = render(rows, total)
    print(text)
    if not args.no_write:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(text + "\n")
        print(f"wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

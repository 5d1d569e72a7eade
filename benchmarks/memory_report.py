"""The report of the memory-search benchmark: Markdown tables from the child reports."""

from __future__ import annotations

import os

from memory_methods import MAX_BS, MIN_BS

CAPS_NOTE = {"torch": 192, "convattn": 256}


def machine() -> str:
    import platform

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


def _ran(r: dict) -> str:
    if r.get("crashed"):
        return "crashed"
    if not r.get("batch_size"):
        return "-"
    return "ran" if r.get("train_ok") else f"OOM at step {r.get('train_steps', 0) + 1}"


def _method(r: dict) -> str:
    name = r["method"]
    if r.get("crashed"):
        return f"{name} (crashed: {r['crashed'][:60]})"
    return name


def table(rows: list[dict]) -> list[str]:
    lines = [
        "| model | method | probes | OOM events | seconds | found | true max | found / true |"
        " trained batch | 20 steps at it |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        crashed = bool(r.get("crashed"))  # the scan after a crash measures a broken process
        true_max = "-" if crashed else r.get("true_max", "")
        ratio = "-" if crashed or not r.get("true_max") else f"{r['found'] / r['true_max']:.1%}"
        seconds = "-" if crashed else f"{r['seconds']:.2f}"
        model = r.get("model", "token MLP") + (" (Keras)" if r["framework"] == "keras" else "")
        lines.append(
            f"| {model} | {_method(r)} | {r['probes']} | {r['ooms']} | "
            f"{seconds} | {r['found']} | {true_max} | {ratio} | "
            f"{r.get('batch_size', '') or '-'} | {_ran(r)} |"
        )
    return lines


def default_table(rows: list[dict]) -> list[str]:
    lines = [
        "| model | method | probes | OOM events | seconds | found | trained batch |"
        " (before confirmation) | 20 steps at it |",
        "|---|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        searched = r.get("searched_batch_size")
        before = f"{searched} -> {r['batch_size']}" if searched and r.get("step_downs") else ""
        seconds = "-" if r.get("crashed") else f"{r['seconds']:.2f}"
        lines.append(
            f"| {r.get('model', '')} | {_method(r)} | {r['probes']} | {r['ooms']} | "
            f"{seconds} | {r['found']} | {r.get('batch_size', '') or '-'} | {before} | "
            f"{_ran(r)} |"
        )
    return lines


def render(rows: list[dict], total_seconds: float) -> str:
    """The report (the "## Memory search" section for BENCHMARKS.md) for these child reports."""
    stable = [r for r in rows if not r.get("default_allocator")]
    default = [r for r in rows if r.get("default_allocator")]
    lines = [
        "## Memory search",
        "",
        "`python benchmarks/memory_search.py` — the largest trainable batch under a real memory "
        "cap: a child process per method caps its address space (`RLIMIT_AS` = size after the "
        f"model build + {CAPS_NOTE['torch']} MiB; {CAPS_NOTE['convattn']} MiB for the conv + "
        f"attention model) and searches batch sizes {MIN_BS}..{MAX_BS}; "
        "the same child then finds the true maximum by an exhaustive scan (doubling, exact "
        'bisection, re-check of the boundary). "found" is the largest size the method saw '
        'fit, before any safety factor; "trained batch" is the size it hands to training '
        "(ours: x0.9, rounded to a multiple of 8, then confirmed by 3 training steps; "
        "Lightning: its own 5 % margin; Accelerate: the size that ran), and 20 training steps "
        "at it ran in the same child right after the search. Models: a token-wise MLP (32 "
        "tokens x 16 features -> 1024 -> 10, the same in PyTorch and Keras), a tiny GPT-2 "
        "from `transformers.GPT2Config` (2 layers, 2 heads, width 64, 64 tokens, vocabulary "
        "1000; eager attention), a small CNN (3 conv + BatchNorm blocks, 32x32 inputs); Adam.",
        "",
        f"Machine: {machine()}. CPU only (no GPU was available for this run: the CUDA path, "
        "with allocator peak readings, is `benchmarks/gpu_check.py`, not run here).",
        "",
        *table(stable),
        "",
    ]
    if default:
        lines += [
            "### With the default allocator settings",
            "",
            "The same methods on a conv + attention model (two convs, 64 tokens of width 64, "
            "4-head attention; 16x16 inputs) with glibc's and oneDNN's *default* settings "
            "(no `MALLOC_*` variables): the probes near the cap leave address space behind "
            "(glibc's dynamic mmap threshold moves large tensors onto a heap that is not given "
            'back), so the size a search saw fit does not fit any more afterwards. "(before '
            'confirmation)" is what our search would have returned without the confirmation '
            "steps, and the size it stepped down to.",
            "",
            *default_table(default),
            "",
        ]
    lines += [
        "Accelerate's `find_executable_batch_size` only goes down (x0.9 per OOM) from its "
        "starting size: from 4096 it pays one OOM per step; from its default 128 it stops at "
        "128 when that fits. Lightning's binsearch runs 3 steps per trial through its fit loop "
        "and writes a checkpoint to disk to restore the model. Lightning and Accelerate "
        "recognise an OOM by the message (`CUDA out of memory`, `DefaultCPUAllocator: can't "
        "allocate memory`, ...): oneDNN's `could not create a primitive` (a convolution "
        "primitive that cannot get its scratch memory at the cap) is not one of theirs, so "
        'they crash on it ("crashed"). Lightning and Accelerate are PyTorch-only, so the '
        "Keras rows compare our search with and without memory readings.",
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

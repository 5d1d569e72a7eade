"""The memory search and the monitors on a real CUDA device: a ready-to-run check.

    python benchmarks/gpu_check.py                       # prints a Markdown report
    python benchmarks/gpu_check.py --out gpu_check.md    # also writes it
    python benchmarks/gpu_check.py --target-memory 8GiB --train-steps 200

What it checks, on ``cuda:0`` (nothing here runs without a GPU: on a machine
without CUDA it prints "no CUDA device" and exits with code 0):

1. **A real CUDA OOM is recognised**: allocating twice the device's memory
   raises ``torch.OutOfMemoryError``; ``is_oom_error`` says yes, and after
   ``release_memory`` the allocated memory is back to where it was.
2. **The peak-memory fit**: ``find_batch_size`` on a small GPT-2 (from
   ``transformers.GPT2Config``, no download) under ``target_memory`` (the
   allocator's per-process fraction, so the OOMs are CUDA's own) uses the
   ``cuda`` meter (``max_memory_allocated`` / ``max_memory_reserved``
   readings), fits ``memory = a + b * batch``, and predicts the ceiling; the
   report gives the predicted and the found ceiling, probes and OOM events.
3. **Confirmed, then trained**: the returned size is confirmed by the
   library, then trained ``--train-steps`` (200) steps at it under the same
   memory fraction, and the allocated memory after the search is compared
   with before it.
4. **bf16 autocast vs fp32**: the ceiling with ``precision="bf16"`` against
   full precision (same model, same budget).
5. **No host sync per step in the monitors**: 200 steps with
   ``SusceptibilityMonitor`` and ``GradientNoiseScaleMonitor`` (imported as
   ``wandb_batchsize.integrations.torch`` names), each non-check step's
   backward and monitor calls inside ``torch.cuda.set_sync_debug_mode("error")``
   (a synchronising CUDA call there raises).

Exit code 0 when every check passed (or when there is no CUDA device), 1 otherwise.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
import traceback
from pathlib import Path

os.environ.setdefault("WANDB_MODE", "disabled")
SEQ, VOCAB = 256, 8192


def _gpt2():
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    config = GPT2Config(
        vocab_size=VOCAB,
        n_positions=SEQ,
        n_embd=256,
        n_layer=4,
        n_head=4,
        attn_implementation="eager",
    )
    return GPT2LMHeadModel(config).cuda()


def _batch(b: int):
    import torch

    ids = torch.randint(0, VOCAB, (b, SEQ), device="cuda")
    return {"input_ids": ids, "labels": ids}


@contextlib.contextmanager
def _fraction(target: int):
    import torch

    total = torch.cuda.get_device_properties(0).total_memory
    torch.cuda.set_per_process_memory_fraction(min(1.0, target / total), 0)
    try:
        yield
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0, 0)


def check_oom() -> dict:
    import torch

    from wandb_batchsize.memory import is_oom_error, release_memory

    before = torch.cuda.memory_allocated()
    total = torch.cuda.get_device_properties(0).total_memory
    try:
        torch.empty(2 * total, dtype=torch.uint8, device="cuda")
        raise AssertionError("allocating twice the device memory did not fail")
    except torch.OutOfMemoryError as exc:
        recognised = is_oom_error(exc)
        release_memory(exc)
        del exc
    after = torch.cuda.memory_allocated()
    return {
        "ok": recognised and after == before,
        "recognised": recognised,
        "allocated_before": before,
        "allocated_after": after,
    }


def search(target: int, precision: str | None, train_steps: int) -> dict:
    import torch

    from wandb_batchsize import find_batch_size

    model = _gpt2()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    torch.cuda.synchronize()
    allocated_before = torch.cuda.memory_allocated()
    result = find_batch_size(
        model,
        _batch(4),
        optimizer=optimizer,
        precision=precision,
        target_memory=target,
        max_batch_size=8192,
        verbose=True,
        log_to_wandb=False,
    )
    torch.cuda.synchronize()
    allocated_after = torch.cuda.memory_allocated()
    out = {
        "precision": precision or "fp32",
        "meter": result.meter,
        "max_fitting": result.max_fitting,
        "first_failing": result.first_failing,
        "predicted": result.predicted,
        "batch_size": result.batch_size,
        "confirmed": result.confirmed,
        "step_downs": list(result.step_downs),
        "probes": len(result.probes),
        "ooms": result.oom_events,
        "seconds": round(result.seconds, 2),
        "fit_slope_mib_per_sample": None if result.fit is None else result.fit.slope / 2**20,
        "peaks_read": sum(p.peak_bytes is not None for p in result.probes if p.fitted),
        "allocated_before": allocated_before,
        "allocated_after": allocated_after,
    }
    if train_steps:
        t0, done, error = time.perf_counter(), 0, ""
        dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision or "")
        with _fraction(target):
            try:
                for _ in range(train_steps):
                    batch = _batch(result.batch_size)
                    with torch.autocast("cuda", dtype=dtype, enabled=dtype is not None):
                        loss = model(**batch).loss
                    loss.backward()
                    optimizer.step()
                    optimizer.zero_grad(set_to_none=True)
                    done += 1
                torch.cuda.synchronize()
            except torch.OutOfMemoryError as exc:
                error = str(exc)[:160]
        out.update(
            train_steps=done, train_error=error, train_seconds=round(time.perf_counter() - t0, 2)
        )
    out["ok"] = (
        result.meter == "cuda"
        and result.fit is not None
        and result.oom_events >= 1
        and result.confirmed
        and out.get("train_steps", train_steps) == train_steps
    )
    del model, optimizer
    torch.cuda.empty_cache()
    return out


def check_monitors(steps: int = 200, every: int = 50) -> dict:
    import torch

    from wandb_batchsize.integrations.torch import (
        GradientNoiseScaleMonitor,
        SusceptibilityMonitor,
    )

    model = _gpt2()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, foreach=True)
    sus = SusceptibilityMonitor(check_every=every, log_to_wandb=False)
    gns = GradientNoiseScaleMonitor(model, batch_size=8, log_every=every, log=False)
    failures: list[str] = []
    for step in range(1, steps + 1):
        batch = _batch(8)
        loss = model(**batch).loss
        quiet = step % every != 0  # check steps may transfer to the host, by design
        try:
            if quiet:
                torch.cuda.set_sync_debug_mode("error")
            loss.backward()
            gns.step()
            sus.on_step(loss.detach())
        except RuntimeError as exc:
            failures.append(f"step {step}: {str(exc)[:120]}")
        finally:
            torch.cuda.set_sync_debug_mode("default")
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    sus.finish()
    return {
        "ok": not failures,
        "steps": steps,
        "check_every": every,
        "sync_errors": failures[:5],
        "n_sync_errors": len(failures),
    }


def report(device: str, results: dict) -> str:
    lines = [f"## GPU check ({device})", "", "| check | result | figures |", "|---|---|---|"]
    for name, r in results.items():
        figures = ", ".join(f"{k}={v}" for k, v in r.items() if k != "ok")
        lines.append(f"| {name} | {'pass' if r.get('ok') else 'FAIL'} | {figures} |")
    fp32, bf16 = results.get("search fp32", {}), results.get("search bf16", {})
    if fp32.get("max_fitting") and bf16.get("max_fitting"):
        ratio = bf16["max_fitting"] / fp32["max_fitting"]
        lines += ["", f"bf16 autocast ceiling / fp32 ceiling: {ratio:.2f}x"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target-memory", default="8GiB")
    parser.add_argument("--train-steps", type=int, default=200)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    try:
        import torch
    except ImportError:
        print("no CUDA device: torch is not installed; nothing to check")
        return 0
    if not torch.cuda.is_available():
        print("no CUDA device: torch.cuda.is_available() is False; nothing to check (exit 0)")
        return 0
    from wandb_batchsize.backends.host_memory import parse_bytes

    target = parse_bytes(args.target_memory)
    device = (
        f"{torch.cuda.get_device_name(0)}, torch {torch.__version__}, CUDA {torch.version.cuda}"
    )
    checks = {
        "CUDA OOM recognised": check_oom,
        "search fp32": lambda: search(target, None, args.train_steps),
        "search bf16": lambda: search(target, "bf16", args.train_steps),
        "monitors without host sync": check_monitors,
    }
    results = {}
    for name, fn in checks.items():
        t0 = time.perf_counter()
        try:
            results[name] = fn()
        except Exception as exc:  # report every check, whatever one of them does
            traceback.print_exc()
            results[name] = {"ok": False, "error": f"{type(exc).__name__}: {str(exc)[:200]}"}
        results[name]["wall_s"] = round(time.perf_counter() - t0, 1)
        print(json.dumps({name: results[name]}, default=str), flush=True)
    text = report(device, results)
    print(text)
    if args.out is not None:
        args.out.write_text(text + "\n")
    return 0 if all(r.get("ok") for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())

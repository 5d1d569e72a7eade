"""The methods the memory-search benchmark compares, and the exhaustive scan (the truth).

- ``ours``: ``wandb_batchsize.find_batch_size`` (memory readings from /proc,
  confirmation steps after the search);
- ``ours-noreadings``: the same strategy with the readings switched off;
- ``ours-unconfirmed``: ours with ``confirm_steps=0`` (the search alone, as
  before the confirmation existed);
- ``lightning``: ``Tuner.scale_batch_size(mode="binsearch")`` (init_val=2,
  its default steps_per_trial=3, max_trials=25);
- ``accelerate-N``: ``accelerate.utils.find_executable_batch_size`` from N.

Every method counts its own probes and OOM events; seconds are wall time of
the method's call alone.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

MIN_BS, MAX_BS = 2, 4096


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


def run_ours(task, readings: bool = True, confirm_steps: int = 3) -> dict:
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
        confirm_steps=confirm_steps,
    )
    seconds = time.perf_counter() - t0
    return {
        "found": result.max_fitting,
        "batch_size": result.batch_size,
        "searched_batch_size": result.searched_batch_size,
        "confirmed": result.confirmed,
        "step_downs": list(result.step_downs),
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
            return task.item(i)

    class Module(pl.LightningModule):
        def __init__(self, net) -> None:
            super().__init__()
            self.net = net
            self.batch_size = MIN_BS

        def training_step(self, batch, _):
            return task.loss(batch)

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
    crashed = None
    try:
        tuned = Tuner(trainer).scale_batch_size(
            module, mode="binsearch", init_val=MIN_BS, max_trials=25, max_val=MAX_BS
        )
    except Exception as exc:  # an error Lightning does not take for an OOM ends its search
        tuned, crashed = None, f"{type(exc).__name__}: {str(exc)[:160]}"
        task.release()
    seconds = time.perf_counter() - t0
    fitted = [b for b, ok in trace if ok]
    return {
        **({"crashed": crashed} if crashed else {}),
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

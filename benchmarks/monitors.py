"""Cost of the susceptibility monitors: overhead per step, check cost, memory.

    python benchmarks/monitors.py              # print the section
    python benchmarks/monitors.py --write      # also replace "## Monitors" in BENCHMARKS.md
    python benchmarks/monitors.py --quick      # a smoke run (small numbers, not for the record)
    python benchmarks/monitors.py --out benchmarks/results/monitors.md   # the section to a file

1. Overhead, per framework, in one process: the same training loop of a small
   model (an MLP 256-512-512-10, 0.4 M parameters, batch 128, CPU, one thread)
   with and without the monitor, in alternating blocks (off, on, off, on, ...),
   with an offline W&B run active in both. The monitor runs with its defaults
   (``check_every=500``, streaming, ``detrend="auto"``, ``max_overhead=0.008``,
   logging scalars and charts); one monitor lives through all "on" blocks, so
   its checks see a growing number of steps as in a real run. A block's time is
   the process' CPU time over its steps (check spikes included; blocks in ABBA
   order); the overhead is the median over pairs of (on - off) / off, with the
   spread over pairs. The monitor's own time (CPU time inside it) is measured
   directly as well: on a shared machine it resolves what a difference of two
   training times cannot.
2. Cost of the parts, measured directly: ``on_step`` per call (float and CPU
   tensor losses) and one check (analysis + W&B logging) against the number of
   steps analysed.
3. Memory: ``tracemalloc`` peak of a synthetic loop (float losses, no W&B) over
   10^4, 10^5 and 10^6 steps: streaming, and ``window=1000``.
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import re
import statistics
import sys
import tempfile
import time
import tracemalloc
import warnings
from pathlib import Path

# one core for everything (the model, and the analysis' BLAS calls in a check), so that
# CPU time and wall time tell the same story
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # benchmark this checkout, whatever is installed

import numpy as np  # noqa: E402
import torch  # noqa: E402

SECTION = "## Monitors"
IN, HIDDEN, OUT, BATCH = 256, 512, 10, 128
# CPU time of this process: what the monitor adds to the training process, less
# disturbed than wall time by other work on a shared machine. W&B writes its files
# from its own service process, which this clock does not count.
CLOCK = time.process_time

warnings.filterwarnings("ignore")


def machine() -> str:
    cpu = platform.processor() or "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (
        f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"torch {torch.__version__} (1 thread), numpy {np.__version__}; "
        f"load average {load:.1f} at start"
    )


def _data(n: int = 8192, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, IN, generator=gen)
    y = (x[:, :OUT] + 0.5 * torch.randn(n, OUT, generator=gen)).argmax(dim=1)
    return x, y


def _torch_mlp() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Linear(IN, HIDDEN),
        torch.nn.ReLU(),
        torch.nn.Linear(HIDDEN, HIDDEN),
        torch.nn.ReLU(),
        torch.nn.Linear(HIDDEN, OUT),
    )


def _wandb_run(name: str):
    import wandb

    return wandb.init(
        project="wandb-batchsize-bench",
        name=name,
        dir=tempfile.mkdtemp(prefix="wbs-bench-"),
        settings=wandb.Settings(
            silent=True, console="off", x_disable_stats=True, disable_git=True, save_code=False
        ),
    )


# -- 1. overhead per framework ---------------------------------------------------------


class CoreTimer:
    """CPU time spent inside a monitor's core (every step's work and every check):
    the monitor's own cost, measured directly rather than as a difference of two
    noisy training times. Keras' in-graph recording is not included (see A/B)."""

    METHODS = ("add_micro", "end_step", "record", "record_many")

    def __init__(self, monitor) -> None:
        self.seconds = 0.0
        self._depth = 0
        core = monitor._core
        for name in self.METHODS:
            setattr(core, name, self._timed(getattr(core, name)))

    def _timed(self, fn):
        def timed(*args, **kwargs):
            if self._depth:
                return fn(*args, **kwargs)
            self._depth += 1
            t0 = CLOCK()
            try:
                return fn(*args, **kwargs)
            finally:
                self.seconds += CLOCK() - t0
                self._depth -= 1

        return timed


def _alternate(block_time, pairs: int) -> tuple[list[float], list[float]]:
    """Pairs of blocks in ABBA order (off-on, on-off, ...), so that a drift of the
    machine's speed during the run cancels instead of biasing one side."""
    off, on = [], []
    for i in range(pairs):
        order = (False, True) if i % 2 == 0 else (True, False)
        times = {flag: block_time(flag) for flag in order}
        off.append(times[False])
        on.append(times[True])
    return off, on


def _pairs_summary(name: str, off: list[float], on: list[float], monitor, timer) -> dict:
    ratios = [(b - a) / a for a, b in zip(off, on, strict=True)]
    core = monitor._core
    own = timer.seconds / max(core.n_steps, 1)
    return {
        "own_ms": 1e3 * own,
        "own": own / statistics.median(off),
        "name": name,
        "step_ms": 1e3 * statistics.median(off),
        "on_ms": 1e3 * statistics.median(on),
        "overhead": statistics.median(ratios),
        "spread": (min(ratios), max(ratios)),
        "checks": core.n_checks,
        "check_steps": list(core.history_steps),
        "deferred": core.n_deferred,
        "steps": core.n_steps,
    }


def bench_torch(block: int, pairs: int) -> dict:
    from wandb_batchsize import SusceptibilityMonitor

    x, y = _data()
    model = _torch_mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    gen = torch.Generator().manual_seed(1)
    run = _wandb_run("torch")
    monitor = SusceptibilityMonitor()
    timer = CoreTimer(monitor)
    step = 0

    def block_time(with_monitor: bool) -> float:
        nonlocal step
        if with_monitor:
            monitor._core.start()  # the monitor idled through the "off" block
        t0 = CLOCK()
        for _ in range(block):
            idx = torch.randint(0, len(x), (BATCH,), generator=gen)
            loss = torch.nn.functional.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            if with_monitor:
                monitor.on_step(loss, step=step)
        return (CLOCK() - t0) / block

    block_time(False)  # warm-up
    off, on = _alternate(block_time, pairs)
    monitor.finish()
    run.finish()
    return _pairs_summary("PyTorch loop (`SusceptibilityMonitor`)", off, on, monitor, timer)


def bench_keras(block: int, pairs: int) -> dict:
    import keras

    from wandb_batchsize.integrations.keras import SusceptibilityCallback

    keras.utils.set_random_seed(0)
    x, y = (t.numpy() for t in _data(block * BATCH))
    model = keras.Sequential(
        [
            keras.Input((IN,)),
            keras.layers.Dense(HIDDEN, activation="relu"),
            keras.layers.Dense(HIDDEN, activation="relu"),
            keras.layers.Dense(OUT),
        ]
    )
    model.compile(
        optimizer=keras.optimizers.SGD(0.05),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )

    class Timer(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            if batch == 1:  # after the first step, which traces the training function
                self.t0 = CLOCK()

        def on_train_end(self, logs=None):
            self.seconds = CLOCK() - self.t0

    run = _wandb_run("keras")
    monitor = SusceptibilityCallback()
    core_timer = CoreTimer(monitor)

    def block_time(with_monitor: bool) -> float:
        timer = Timer()  # first: it stops before the monitor's end-of-training check
        callbacks = [timer, monitor] if with_monitor else [timer]
        model.fit(x, y, batch_size=BATCH, epochs=1, verbose=0, shuffle=True, callbacks=callbacks)
        return timer.seconds / (block - 1)

    block_time(False)  # warm-up
    off, on = _alternate(block_time, pairs)
    run.finish()
    return _pairs_summary("Keras `fit` (`integrations.keras`)", off, on, monitor, core_timer)


def bench_lightning(block: int, pairs: int) -> dict:
    import lightning.pytorch as L  # noqa: N812 - the name Lightning uses

    from wandb_batchsize.integrations.lightning import SusceptibilityCallback

    x, y = _data()
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(x, y), batch_size=BATCH, shuffle=True
    )

    class Module(L.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.net = _torch_mlp()

        def training_step(self, batch, batch_idx):
            return torch.nn.functional.cross_entropy(self.net(batch[0]), batch[1])

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.05)

    class Timer(L.Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            if not hasattr(self, "t0"):  # after the first step
                self.t0 = CLOCK()

        def on_train_end(self, trainer, pl_module):
            self.seconds = CLOCK() - self.t0

    module = Module()
    run = _wandb_run("lightning")
    monitor = SusceptibilityCallback()
    core_timer = CoreTimer(monitor)

    def block_time(with_monitor: bool) -> float:
        timer = Timer()
        trainer = L.Trainer(
            max_steps=block,
            callbacks=[timer, monitor] if with_monitor else [timer],
            logger=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            enable_checkpointing=False,
            num_sanity_val_steps=0,
        )
        trainer.fit(module, loader)
        return timer.seconds / (block - 1)

    block_time(False)
    off, on = _alternate(block_time, pairs)
    run.finish()
    name = "Lightning `Trainer` (`integrations.lightning`)"
    return _pairs_summary(name, off, on, monitor, core_timer)


def bench_transformers(block: int, pairs: int) -> dict:
    import transformers

    from wandb_batchsize.integrations.transformers import SusceptibilityCallback

    transformers.logging.set_verbosity_error()
    x, y = _data()

    class Data(torch.utils.data.Dataset):
        def __len__(self):
            return len(x)

        def __getitem__(self, i):
            return {"x": x[i], "labels": y[i]}

    class Model(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = _torch_mlp()

        def forward(self, x, labels=None):
            logits = self.net(x)
            return {"loss": torch.nn.functional.cross_entropy(logits, labels), "logits": logits}

    class Timer(transformers.TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if not hasattr(self, "t0"):
                self.t0 = CLOCK()

        def on_train_end(self, args, state, control, **kwargs):
            self.seconds = CLOCK() - self.t0

    model = Model()
    run = _wandb_run("transformers")
    monitor = SusceptibilityCallback()
    core_timer = CoreTimer(monitor)
    out = tempfile.mkdtemp(prefix="wbs-bench-hf-")

    def block_time(with_monitor: bool) -> float:
        timer = Timer()
        args = transformers.TrainingArguments(
            output_dir=out,
            max_steps=block,
            per_device_train_batch_size=BATCH,
            learning_rate=0.05,
            optim="sgd",
            lr_scheduler_type="constant",
            logging_steps=500,
            report_to="none",
            save_strategy="no",
            use_cpu=True,
            disable_tqdm=True,
        )
        trainer = transformers.Trainer(
            model=model,
            args=args,
            train_dataset=Data(),
            callbacks=[timer, monitor] if with_monitor else [timer],
        )
        trainer.train()
        return timer.seconds / (block - 1)

    block_time(False)
    off, on = _alternate(block_time, pairs)
    run.finish()
    name = "Transformers `Trainer` (`integrations.transformers`)"
    return _pairs_summary(name, off, on, monitor, core_timer)


# -- 2. the parts ----------------------------------------------------------------------


def on_step_cost(n: int) -> dict:
    from wandb_batchsize import SusceptibilityMonitor

    out = {}
    for kind, make in (("float", lambda i: float(i % 7)), ("tensor", lambda i: torch.tensor(0.5))):
        values = [make(i) for i in range(n)]
        monitor = SusceptibilityMonitor(check_every=10**12, log_to_wandb=False)
        t0 = CLOCK()
        for v in values:
            monitor.on_step(v)
        monitor._core._flush()  # the stack + transfer of the pending tensors, amortised
        out[kind] = (CLOCK() - t0) / n * 1e6
    return out


def _clear_analysis_caches() -> None:
    """Forget the analysis' memoised nulls and covariances: measure a cold check."""
    import wandb_batchsize.analysis as analysis

    for module in list(sys.modules.values()):
        if getattr(module, "__name__", "").startswith(analysis.__name__):
            for value in vars(module).values():
                if callable(getattr(value, "cache_clear", None)):
                    value.cache_clear()


def check_costs(sizes: list[int]) -> list[dict]:
    """One check (analysis + W&B scalars and charts, offline) after N steps."""
    from wandb_batchsize.monitor import MonitorCore

    rng = np.random.default_rng(0)
    rows = []
    run = _wandb_run("check-cost")
    for mode, window in (("streaming", None), ("window=1000", 1000)):
        core = MonitorCore(check_every=10**12, window=window, max_overhead=None)
        done = 0
        for n in sizes:
            core.record_many(rng.standard_normal(n - done))
            done = n
            _clear_analysis_caches()
            t0 = time.perf_counter()
            core._check()
            rows.append({"mode": mode, "n": n, "seconds": time.perf_counter() - t0})
    run.finish()
    return rows


# -- 3. memory -------------------------------------------------------------------------


def memory(sizes: list[int]) -> list[dict]:
    """tracemalloc of a synthetic loop: peak (transients of a check included) and what
    the monitor still holds at the end (its state), above the empty monitor."""
    from wandb_batchsize import SusceptibilityMonitor

    warm = SusceptibilityMonitor(check_every=100, log_to_wandb=False, max_overhead=None)
    for v in np.random.default_rng(1).standard_normal(3000):
        warm.on_step(float(v))  # lazy imports of the analysis happen here, not below
    rows = []
    for mode, options in (
        ("streaming, defaults", {"check_every": 500}),
        (
            "streaming, a check every 1 000 steps",
            {"check_every": 1000, "max_overhead": None, "n_permutations": 0},
        ),
        ("window=1000, defaults", {"check_every": 500, "window": 1000}),
    ):
        for n in sizes:
            gc.collect()
            values = np.random.default_rng(0).standard_normal(n).tolist()
            tracemalloc.start()
            monitor = SusceptibilityMonitor(log_to_wandb=False, **options)
            base = tracemalloc.get_traced_memory()[0]
            t0 = time.perf_counter()
            for v in values:
                monitor.on_step(v)
            seconds = time.perf_counter() - t0
            current, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            rows.append(
                {
                    "mode": mode,
                    "n": n,
                    "peak": peak - base,
                    "current": current - base,
                    "checks": monitor._core.n_checks,
                    "seconds": seconds,
                }
            )
            del monitor, values
    return rows


# -- report ----------------------------------------------------------------------------


def _mb(b: float) -> str:
    return f"{b / 2**20:.2f} MiB"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="replace the BENCHMARKS.md section")
    parser.add_argument("--quick", action="store_true", help="smoke run with small numbers")
    parser.add_argument("--frameworks", default="torch,keras,lightning,transformers")
    parser.add_argument("--out", type=Path, help="also write the section to this file")
    args = parser.parse_args()
    torch.set_num_threads(1)
    info = machine()
    print(info, flush=True)

    block, pairs = (600, 2) if args.quick else (2500, 5)
    benches = {
        "torch": bench_torch,
        "keras": bench_keras,
        "lightning": bench_lightning,
        "transformers": bench_transformers,
    }
    overhead = []
    for name in args.frameworks.split(","):
        t0 = time.perf_counter()
        row = benches[name](block, pairs)
        overhead.append(row)
        print(f"{name}: {row} ({time.perf_counter() - t0:.0f} s)", flush=True)

    per_step = on_step_cost(20_000 if args.quick else 200_000)
    print("on_step", per_step, flush=True)
    sizes = [2_000, 10_000] if args.quick else [2_000, 10_000, 100_000, 1_000_000]
    checks = check_costs(sizes)
    print("checks", checks, flush=True)
    mem_sizes = [10_000, 100_000] if args.quick else [10_000, 100_000, 1_000_000]
    mem = memory(mem_sizes)
    print("memory", mem, flush=True)

    lines = [
        SECTION,
        "",
        "`python benchmarks/monitors.py --write` (one process, CPU). Machine: " + info + ".",
        "",
        f"**Overhead per step** of each monitor, with its defaults (`check_every=500`, "
        f'streaming, `detrend="auto"`, `max_overhead=0.008`, scalars and charts logged to an '
        f"offline W&B run), against the same loop without it: an MLP "
        f"{IN}-{HIDDEN}-{HIDDEN}-{OUT} (0.4 M parameters), batch {BATCH}, one CPU thread "
        "(the analysis' BLAS too). "
        f"{pairs} pairs of {block}-step blocks (off, on) alternate; one monitor lives through "
        'all "on" blocks, so its checks see up to '
        f"{pairs * block} steps. Block time = CPU time of the process / steps, check spikes included; "
        "overhead = median over pairs of (on - off) / off, [min, max] over pairs.",
        "",
        "| loop | step without | monitor's own time per step | A/B: step with | A/B overhead "
        "[min, max] | checks (put off) |",
        "|---|---|---|---|---|---|",
    ]
    for r in overhead:
        lo, hi = r["spread"]
        lines.append(
            f"| {r['name']} | {r['step_ms']:.2f} ms | {1e3 * r['own_ms']:.1f} us "
            f"(**{100 * r['own']:.2f} %**) | {r['on_ms']:.2f} ms | "
            f"{100 * r['overhead']:+.1f} % [{100 * lo:+.1f}, {100 * hi:+.1f}] | "
            f"{r['checks']} at {r['check_steps']} ({r['deferred']}) |"
        )
    lines += [
        "",
        '"Own time" is the CPU time spent inside the monitor (its per-step work and '
        "its checks: flush, analysis, W&B logging), measured directly, over the steps it "
        "saw, as a fraction of the step time without it. The A/B columns compare the CPU "
        "time of this process per step with and without the monitor; their spread over "
        "pairs shows how much a shared machine disturbs such a difference. Keras' "
        "in-graph recording (a scalar write per step) is only in the A/B columns.",
        "",
        "The parts, measured directly:",
        "",
        f"- `on_step(loss)`: {per_step['float']:.2f} us per call with a float, "
        f"{per_step['tensor']:.2f} us with a CPU tensor (`detach()` and a list append; "
        "the device transfer waits for the check).",
        "- one check (flush + analysis + W&B scalars and two chart tables, offline run), "
        "against the steps analysed; cold (the analysis' memo of nulls and covariances "
        "cleared before each):",
        "",
        "| steps analysed | " + " | ".join(f"{n:,}" for n in sizes) + " |",
        "|---|" + "---|" * len(sizes),
    ]
    for mode in ("streaming", "window=1000"):
        cells = [f"{1e3 * r['seconds']:.0f} ms" for r in checks if r["mode"] == mode]
        lines.append(f"| {mode} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "A check's cost is the analysis: its i.i.d. null is simulated at the current N "
        "(199 Gaussian series of N values), so a streaming check grows with N while the "
        "window's stays flat. `max_overhead` (default 0.8 %) turns that into a schedule: "
        "after each check the next one is put off (by whole multiples of `check_every`) "
        "until the time spent in checks, the next one included (this check's cost, scaled "
        "by the growth of N when streaming), is at most 0.8 % of the training time so far, "
        "so the monitor's overhead stays near `max_overhead` plus the per-step cost "
        "whatever the model; the final check always runs. `max_overhead=None` checks every `check_every` steps whatever the "
        "cost.",
        "",
        "**Memory** (`tracemalloc`, synthetic loop of float losses, no W&B; Python "
        "allocations, numpy buffers included, above the empty monitor): held at the "
        "end / peak during the loop (a check's temporaries included), and checks done:",
        "",
        "| mode | " + " | ".join(f"{n:,} steps" for n in mem_sizes) + " |",
        "|---|" + "---|" * len(mem_sizes),
    ]
    for mode in dict.fromkeys(r["mode"] for r in mem):
        cells = [
            f"{_mb(r['current'])} / {_mb(r['peak'])} ({r['checks']})"
            for r in mem
            if r["mode"] == mode
        ]
        lines.append(f"| {mode} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "Memory does not grow with the number of steps: the streaming accumulator keeps "
        "fixed-size statistics for every scale up to `max_scale` (10 000), pending losses "
        "are moved to it at each check (at most 4096 wait), a window keeps its N values, "
        "and `history` keeps the last 100 results (older ones are on W&B). What is held "
        "grows over the first hundred checks only, as `history` and the analysis' own "
        "memo of per-N covariance matrices (64 entries) fill, then stays bounded: the "
        "second row checks every 1 000 steps whatever the cost (null switched off, "
        "`n_permutations=0`, to keep the run short); 1 000 checks hold a little more "
        "than 100 only because the scale grid, and so each memoised matrix, is larger "
        "at large N (up to `n_points` scales). "
        "The peak is a check's temporaries: the analysis simulates its i.i.d. null in "
        "chunks of 2 million values (16 MB), plus filtering; above that length one "
        "simulated series of N values at a time. With the defaults a synthetic loop (a "
        "step of a microsecond) gets few checks, as `max_overhead` intends.",
        "",
    ]
    section = "\n".join(lines)
    print()
    print(section)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(section + "\n")
        print(f"wrote {args.out}")
    if args.write:
        path = ROOT / "BENCHMARKS.md"
        text = path.read_text() if path.exists() else "# Benchmarks\n"
        pattern = re.compile(rf"^{re.escape(SECTION)}\n.*?(?=^## |\Z)", re.S | re.M)
        if pattern.search(text):
            text = pattern.sub(lambda _: section + "\n", text)
        else:
            text = text.rstrip("\n") + "\n\n" + section + "\n"
        path.write_text(text)
        print(f"wrote {path}")


if __name__ == "__main__":
    sys.exit(main())

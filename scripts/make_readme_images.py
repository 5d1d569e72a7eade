"""Regenerate the README's figures in docs/images/ from the examples' own data.

    python scripts/make_readme_images.py            # all figures, ~10-30 s on a laptop CPU
    python scripts/make_readme_images.py --out /tmp/images

Every figure is drawn by the project's own code on data made by
``examples/tiny_task.py`` (a seeded teacher-student task trained with SGD on the
CPU; needs torch):

- ``susceptibility.png``: ``plot_susceptibility(analyze(losses))`` of the
  per-step training losses of one run (linear-detrended, as for a falling loss);
- ``comparison.png``: ``plot_comparison`` of the same analysis at three batch sizes;
- ``sweep.png``: ``plot_sweep(analyze_sweep(B, val_loss))`` of a batch-size sweep
  (two seeds per size, equal sample budget), the offline twin of
  ``wandb-batchsize sweep analyze``;
- ``wandb_custom_chart.png`` (only with ``vl-convert-python`` installed): the
  shipped Vega-Lite preset ``tracking/vega/susceptibility.json`` rendered with
  the same analysis, as the W&B custom chart panel draws it.

No W&B run is made. The numbers behind each figure are printed, so a change in
the analysis shows up in the script's output as well as in the pictures.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "docs" / "images"
sys.path.insert(0, str(REPO / "examples"))

SWEEP_SIZES = (8, 16, 32, 64, 128, 256, 512, 1024)
SWEEP_SEEDS = (0, 1)
COMPARE_SIZES = (8, 64, 512)
MONITOR_BATCH = 16
MONITOR_STEPS = 4000
# PNG metadata without the matplotlib version, so unchanged figures stay byte-identical
PNG_METADATA = {"Software": None}


def _save(fig: Any, path: Path) -> None:
    fig.savefig(path, dpi=100, metadata=PNG_METADATA)
    print(f"  wrote {path.relative_to(REPO) if path.is_relative_to(REPO) else path}")


def _describe(label: str, result: Any) -> None:
    fields = ["K_c", "kappa", "alpha", "tau_int", "K_corr", "p_iid", "is_significant"]
    parts = [
        f"{f}={getattr(result, f)}"
        if isinstance(getattr(result, f), bool)
        else f"{f}={getattr(result, f):.4g}"
        for f in fields
        if isinstance(getattr(result, f, None), int | float)
    ]
    if getattr(result, "K_c_interval", None) is not None:
        parts.append(f"K_c_interval={tuple(round(float(v)) for v in result.K_c_interval)}")
    print(f"  {label}: " + " ".join(parts))


def monitor_losses(batch_size: int, steps: int, data: Any) -> list[float]:
    """Per-step training losses of one run, as a SusceptibilityMonitor sees them."""
    from tiny_task import train

    return train(batch_size, lr=0.1, max_steps=steps, seed=0, data=data).train_losses


def make_susceptibility(out: Path, data: Any) -> Any:
    import wandb_batchsize as wbs
    from wandb_batchsize.plot import plot_susceptibility

    losses = monitor_losses(MONITOR_BATCH, MONITOR_STEPS, data)
    result = wbs.analyze(losses, detrend="linear")
    _describe(f"training losses, B={MONITOR_BATCH}, {len(losses)} steps", result)
    fig = plot_susceptibility(
        result, title=f"Per-step training loss, batch size {MONITOR_BATCH} (tiny_task)"
    )
    _save(fig, out / "susceptibility.png")
    return result


def make_comparison(out: Path, data: Any) -> None:
    import wandb_batchsize as wbs
    from wandb_batchsize.plot import plot_comparison

    results = {}
    for b in COMPARE_SIZES:
        result = wbs.analyze(monitor_losses(b, MONITOR_STEPS, data), detrend="linear")
        _describe(f"B={b}", result)
        results[f"batch {b}"] = result
    fig = plot_comparison(results, title="Training-loss susceptibility at three batch sizes")
    _save(fig, out / "comparison.png")


def make_sweep(out: Path, data: Any) -> None:
    from tiny_task import train

    import wandb_batchsize as wbs
    from wandb_batchsize.plot import plot_sweep

    sizes, losses = [], []
    for b in SWEEP_SIZES:
        for seed in SWEEP_SEEDS:
            run = train(b, lr=0.05 * (b / 8) ** 0.5, epochs=4, seed=seed, data=data)
            sizes.append(b)
            losses.append(run.val_loss)
            print(f"    B={b:5d} seed={seed} steps={run.steps:5d} val_loss={run.val_loss:.4f}")
    result = wbs.analyze_sweep(sizes, losses)
    _describe("sweep", result)
    fig = plot_sweep(
        result, title="Batch-size sweep: validation loss after 4 epochs (tiny_task, 2 seeds)"
    )
    _save(fig, out / "sweep.png")


def make_wandb_chart(out: Path, result: Any) -> None:
    """The shipped custom-chart preset, filled in as W&B fills it, rendered offline."""
    try:
        import vl_convert as vlc
    except ImportError:
        print("  skipped wandb_custom_chart.png: pip install vl-convert-python to render it")
        return
    from wandb_batchsize.tracking.charts import (
        CURVE_COLUMNS,
        CUSTOM_PRESET_FIELDS,
        VEGA_SPEC_PATH,
        curve_rows,
    )

    title = f"chi(K) and V(K), K_c = {float(result.K_c):.0f}"
    text = VEGA_SPEC_PATH.read_text()
    text = re.sub(r"\$\{field:([^}]+)\}", lambda m: CUSTOM_PRESET_FIELDS[m.group(1)], text)
    text = text.replace("${string:title}", title)
    spec = json.loads(text)
    rows = [dict(zip(CURVE_COLUMNS, r, strict=True)) for r in curve_rows(result)]
    spec["data"] = {"values": [{**row, "name": "tiny-task-run"} for row in rows]}
    v5 = [v for v in vlc.get_vegalite_versions() if v.startswith("5.")]
    version = max(v5, key=lambda v: tuple(int(p) for p in v.split("."))) if v5 else None
    png = vlc.vegalite_to_png(spec, vl_version=version, scale=1.0)
    path = out / "wandb_custom_chart.png"
    path.write_bytes(png)
    print(f"  wrote {path.relative_to(REPO) if path.is_relative_to(REPO) else path}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="default: docs/images")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)

    import torch
    from tiny_task import make_data

    torch.set_num_threads(1)  # small model: threads only add noise to the timing
    t0 = time.perf_counter()
    data = make_data()
    print("susceptibility of one run's per-step losses")
    result = make_susceptibility(args.out, data)
    print("comparison across batch sizes")
    make_comparison(args.out, data)
    print("batch-size sweep")
    make_sweep(args.out, data)
    print("W&B custom chart preset")
    make_wandb_chart(args.out, result)
    print(f"done in {time.perf_counter() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

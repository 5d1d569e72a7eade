"""Shared by the benchmark scripts: the machine line and writing one BENCHMARKS.md section."""

from __future__ import annotations

import os
import platform
import re
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def machine(*versions: str) -> str:
    """Cores, CPU model, Python, numpy (and ``versions``), and the load average now."""
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    return (
        f"{os.cpu_count()} cores, {model}; Python {platform.python_version()}, "
        f"{', '.join([f'numpy {np.__version__}', *versions])}; load average at start {load}"
    )


def write_section(title: str, text: str) -> Path:
    """Replace the section ``title`` (a ``## `` heading) of BENCHMARKS.md, or append it."""
    path = ROOT / "BENCHMARKS.md"
    old = path.read_text() if path.exists() else "# Benchmarks\n"
    pattern = re.compile(rf"^{re.escape(title)}\n.*?(?=^## |\Z)", re.S | re.M)
    body = text.rstrip("\n") + "\n"
    if pattern.search(old):
        new = pattern.sub(lambda _: body + "\n", old, count=1)
    else:
        new = old.rstrip("\n") + "\n\n" + body
    path.write_text(new.rstrip("\n") + "\n")
    return path


def publish(title: str, text: str, write: bool) -> None:
    """Print the section; with ``write``, also put it into BENCHMARKS.md."""
    print(text)
    if write:
        print(f"wrote {write_section(title, text)}")

"""Where ``--plot`` writes, decided before the analysis runs.

- a directory (an existing one, or a path ending in ``/``): ``DIR/<default name>``;
- a name without an extension: ``.png`` is added (as matplotlib would), and said;
- a name whose extension matplotlib cannot write: a one-line error listing the
  formats it can;
- a missing parent directory: a one-line error (nothing is created).
"""

from __future__ import annotations

import os
from pathlib import Path

from wandb_batchsize.cli import UsageError


def supported_formats() -> dict[str, str]:
    """File extensions matplotlib can save, with their descriptions (needs matplotlib)."""
    try:
        from matplotlib.backend_bases import FigureCanvasBase
    except ImportError as exc:
        raise UsageError(
            f"--plot needs matplotlib ({exc}); pip install 'wandb-batchsize[plot]'"
        ) from None
    return FigureCanvasBase.get_supported_filetypes()


def resolve_plot_path(arg: str, default_name: str) -> Path:
    """The file ``--plot ARG`` will write (see the module docstring), else ``UsageError``."""
    formats = supported_formats()
    if not arg:
        return Path(default_name)
    path = Path(arg)
    if arg.endswith(("/", os.sep)) or path.is_dir():
        if not path.is_dir():
            raise UsageError(f"--plot {arg}: no such directory; create it first")
        return path / default_name
    if not path.suffix:
        path = path.with_name(path.name + ".png")
    fmt = path.suffix[1:].lower()
    if fmt not in formats:
        raise UsageError(
            f"--plot {arg}: matplotlib cannot write .{fmt} files; use one of: "
            + ", ".join(f".{ext}" for ext in sorted(formats))
        )
    if not path.parent.is_dir():
        raise UsageError(f"--plot {arg}: no such directory {path.parent}; create it first")
    return path

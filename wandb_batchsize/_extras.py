"""Which ``pip install`` extra brings an optional dependency, and an error that says so.

The core needs only numpy, scipy, wandb, pyyaml and jsonschema; each framework
comes with an extra (``pyproject.toml``). A missing one surfaces as
``ModuleNotFoundError: No module named 'torch'`` from deep inside an import;
:func:`import_with_hint` re-raises it naming the extra, as the CLI does.
"""

from __future__ import annotations

import importlib
from types import ModuleType

#: top-level module -> the extra of ``wandb-batchsize`` that installs it
EXTRA_FOR_MODULE = {
    "torch": "torch",
    "tensorflow": "tensorflow",
    "keras": "tensorflow",
    "lightning": "lightning",
    "pytorch_lightning": "lightning",
    "transformers": "transformers",
    "accelerate": "transformers",
    "matplotlib": "plot",
    "wandb_workspaces": "workspaces",
}


def missing_extra_error(exc: ModuleNotFoundError, wanted: str) -> ModuleNotFoundError | None:
    """The error to raise instead of ``exc`` when it is a missing optional dependency."""
    root = (exc.name or "").split(".")[0]
    extra = EXTRA_FOR_MODULE.get(root)
    if extra is None:
        return None
    error = ModuleNotFoundError(
        f"{wanted} needs {root}, which is not installed: "
        f"pip install 'wandb-batchsize[{extra}]' (from a checkout: pip install -e '.[{extra}]')",
        name=exc.name,
    )
    return error


def import_with_hint(module: str, wanted: str | None = None) -> ModuleType:
    """``importlib.import_module(module)``; a missing optional dependency names its extra."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        error = missing_extra_error(exc, wanted or module)
        if error is None:
            raise
        raise error from exc

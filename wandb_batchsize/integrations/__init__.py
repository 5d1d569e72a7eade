"""Framework adapters: thin callbacks over the analysis and the W&B tracking.

Each framework is imported only by its own module (``integrations.torch``,
``.keras``, ``.lightning``, ``.transformers``), loaded when first used.
"""

from __future__ import annotations

import importlib
from types import ModuleType

_FRAMEWORKS = ("torch", "keras", "lightning", "transformers")


def __getattr__(name: str) -> ModuleType:
    if name in _FRAMEWORKS:
        module = importlib.import_module(f"{__name__}.{name}")
        globals()[name] = module
        return module
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

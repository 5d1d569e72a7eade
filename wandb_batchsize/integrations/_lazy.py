"""Lazy attributes for the framework packages: a name is imported on first use."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any

from wandb_batchsize._extras import import_with_hint


def lazy_getattr(package: str, names: Mapping[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` that loads ``names[attr]`` (a module path) on first access."""
    namespace = importlib.import_module(package).__dict__

    def module_getattr(attr: str) -> Any:
        if attr not in names:
            raise AttributeError(f"module {package!r} has no attribute {attr!r}")
        module = import_with_hint(names[attr], f"{package}.{attr}")
        value = module if names[attr].endswith("." + attr) else getattr(module, attr)
        namespace[attr] = value
        return value

    return module_getattr

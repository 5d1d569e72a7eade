"""Lazy attributes for the framework packages: a name is imported on first use."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_getattr(package: str, names: Mapping[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` that loads ``names[attr]`` (a module path) on first access."""
    namespace = importlib.import_module(package).__dict__

    def module_getattr(attr: str) -> Any:
        if attr not in names:
            raise AttributeError(f"module {package!r} has no attribute {attr!r}")
        module = importlib.import_module(names[attr])
        value = module if names[attr].endswith("." + attr) else getattr(module, attr)
        namespace[attr] = value
        return value

    return module_getattr

"""Framework adapters: thin callbacks over the monitors, the probes and the W&B tracking.

One package per framework (``integrations.torch``, ``.keras``, ``.lightning``,
``.transformers``), each with one module per concern (``susceptibility``,
``noise_scale``, ``finder``); a framework is imported only when its package is
used. ``wbs.integrations.torch`` etc. are reachable as attributes after
``import wandb_batchsize as wbs``, and so are the older module names
(``noise_scale_torch``, ``gns_lightning``, ``gns_transformers``; deprecated).
"""

from __future__ import annotations

from types import ModuleType

from wandb_batchsize._extras import import_with_hint

_FRAMEWORKS = ("torch", "keras", "lightning", "transformers")
_DEPRECATED = ("noise_scale_torch", "gns_lightning", "gns_transformers")

__all__ = list(_FRAMEWORKS)


def __getattr__(name: str) -> ModuleType:
    if name in _FRAMEWORKS or name in _DEPRECATED:
        module = import_with_hint(f"{__name__}.{name}")
        globals()[name] = module
        return module
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

"""Values waiting for the next W&B run this process starts.

Anything that computes something before ``wandb.init`` (the memory search is
the first user) and wants it in the run's config or summary calls
:func:`defer`. The next ``wandb.init`` in the process applies it, with no line
of user code, and the hook removes itself:

    wbs.find_batch_size(model, batch)    # no run yet: the result waits here
    run = wandb.init(project="demo")     # config.batch_size and batch_finder/* land in it

How: :func:`defer` installs a thin wrapper over ``wandb.init`` (the
``wandb.init`` attribute that user code, Lightning's ``WandbLogger`` and the
Transformers ``WandbCallback`` all call). The wrapper calls the real
``wandb.init`` unchanged, applies the pending values to the run it returned,
and puts the original ``wandb.init`` back once nothing is pending. If
``wandb.init`` raises, the values stay pending for the next attempt. A run in
``mode="disabled"`` takes them too (and records nothing). Code that kept its
own reference to the original function (``from wandb import init`` done
before the hook) bypasses it; :func:`apply_pending` can then be called with
the run by hand.

Why not ``wandb.setup(settings=wandb.Settings(config_paths=[...]))``: it holds
for every later run of the process, not only the next one, needs a file, and
cannot carry summary values.
"""

from __future__ import annotations

import functools
import sys
import threading
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

_HOOK_MARK = "__wandb_batchsize_pending_hook__"


@dataclass
class PendingItem:
    """What one source wants recorded on the next run.

    ``apply(run)``, when given, does the recording itself (for rules such as
    "a sweep's value wins"); otherwise ``config`` goes to ``run.config`` (with
    ``allow_val_change=True``) and ``summary`` to ``run.summary``.
    """

    source: str
    config: dict[str, Any] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)
    apply: Callable[[Any], None] | None = None


_lock = threading.RLock()
_pending: dict[str, PendingItem] = {}


def defer(
    source: str,
    *,
    config: Mapping[str, Any] | None = None,
    summary: Mapping[str, Any] | None = None,
    apply: Callable[[Any], None] | None = None,
) -> None:
    """Keep values for the next run; a later call from the same ``source`` replaces them.

    Imports wandb (to hook ``wandb.init``); if wandb cannot be imported the
    values are dropped with a warning and nothing else happens.
    """
    item = PendingItem(source, dict(config or {}), dict(summary or {}), apply)
    with _lock:
        _pending[source] = item
        try:
            _install_hook()
        except Exception as exc:  # noqa: BLE001 - W&B trouble never stops the caller
            _pending.pop(source, None)
            warnings.warn(
                f"wandb-batchsize: cannot hook wandb.init ({type(exc).__name__}: {exc}); "
                f"{source} results will not be recorded on the next run",
                RuntimeWarning,
                stacklevel=2,
            )


def pending() -> list[PendingItem]:
    """What is waiting, in the order it was deferred."""
    with _lock:
        return list(_pending.values())


def discard(source: str | None = None) -> None:
    """Forget what ``source`` (or every source, with None) left pending; unhook if empty."""
    with _lock:
        if source is None:
            _pending.clear()
        else:
            _pending.pop(source, None)
        if not _pending:
            _uninstall_hook()


def apply_pending(run: Any) -> list[str]:
    """Record everything pending on ``run`` and clear it; returns the sources applied.

    Each item is applied on its own: a failing one warns and does not stop
    the others (nor the run).
    """
    from wandb_batchsize.tracking.run import WandbSink

    with _lock:
        items = list(_pending.values())
        _pending.clear()
        _uninstall_hook()
    applied = []
    for item in items:
        try:
            if item.apply is not None:
                item.apply(run)
            else:
                sink = WandbSink(run, name=item.source)
                if item.config:
                    sink.config_update(item.config, allow_val_change=True)
                if item.summary:
                    sink.summary_update(item.summary)
            applied.append(item.source)
        except Exception as exc:  # noqa: BLE001 - never break the user's wandb.init
            warnings.warn(
                f"wandb-batchsize: could not record {item.source} on the new run "
                f"({type(exc).__name__}: {exc})",
                RuntimeWarning,
                stacklevel=2,
            )
    return applied


def hook_installed() -> bool:
    wandb = sys.modules.get("wandb")
    return wandb is not None and getattr(wandb.init, _HOOK_MARK, False)


def _install_hook() -> None:
    import wandb

    if getattr(wandb.init, _HOOK_MARK, False):
        return
    original = wandb.init

    @functools.wraps(original)
    def init(*args: Any, **kwargs: Any) -> Any:
        run = original(*args, **kwargs)
        if run is not None and pending():
            apply_pending(run)
        return run

    setattr(init, _HOOK_MARK, True)
    init.__wandb_batchsize_original__ = original  # type: ignore[attr-defined]
    wandb.init = init


def _uninstall_hook() -> None:
    wandb = sys.modules.get("wandb")
    if wandb is None:
        return
    current = wandb.init
    if getattr(current, _HOOK_MARK, False):
        wandb.init = current.__wandb_batchsize_original__

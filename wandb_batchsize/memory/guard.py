"""Ctrl-C during a search: the state is restored exactly, whatever the timing.

:class:`InterruptGuard` replaces the SIGINT handler for the duration of a
search. While a phase runs (probes), the first Ctrl-C raises
``KeyboardInterrupt`` at once, as usual — and from that moment every further
Ctrl-C is *deferred*: recorded, not raised. The restore that follows (in
:meth:`InterruptGuard.restoring`) therefore cannot be cut short by a second
Ctrl-C pressed in quick succession; the restore also defers any Ctrl-C that
arrives while it runs. A restore skipped because the interrupt landed in the
few bytecodes between the phase's end and the restore's start is done again
on the way out (:meth:`InterruptGuard.__exit__`). When the guard exits, the
previous handler is put back and a deferred interrupt is re-raised as
``KeyboardInterrupt`` (unless another exception is already propagating).

A custom SIGINT handler that was installed before the search is called
instead of raising (deferred the same way). Outside the main thread (where
Python cannot install signal handlers) the guard only restores.
Framework-free.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator
from types import FrameType
from typing import Any


class InterruptGuard:
    """``with InterruptGuard() as guard: with guard.restoring(snapshot, release): ...``."""

    def __init__(self) -> None:
        self.deferring = False
        self.pending = False
        self._previous: Any = None
        self._installed = False
        self._dirty: tuple[Any, Callable[[], None] | None] | None = None

    # -- the handler -------------------------------------------------------------
    def _handler(self, signum: int, frame: FrameType | None) -> None:
        if self.deferring:
            self.pending = True
            return
        self.deferring = True  # a second Ctrl-C right after this one waits for the restore
        previous = self._previous
        if callable(previous) and previous is not signal.default_int_handler:
            previous(signum, frame)
            return
        raise KeyboardInterrupt

    def __enter__(self) -> InterruptGuard:
        if threading.current_thread() is threading.main_thread():
            with contextlib.suppress(ValueError, TypeError, OSError):
                self._previous = signal.getsignal(signal.SIGINT)
                if self._previous is not signal.SIG_IGN:
                    signal.signal(signal.SIGINT, self._handler)
                    self._installed = True
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        self.deferring = True
        try:
            if self._dirty is not None:  # a restore that an interrupt skipped: do it now
                self._restore(*self._dirty)
        finally:
            if self._installed:
                signal.signal(signal.SIGINT, self._previous)
                self._installed = False
        if self.pending and exc_type is None:
            self.pending = False
            previous = self._previous
            if callable(previous) and previous is not signal.default_int_handler:
                previous(signal.SIGINT, None)
            else:
                raise KeyboardInterrupt

    # -- phases ------------------------------------------------------------------
    def _restore(self, snapshot: Any, release: Callable[[], None] | None) -> None:
        self.deferring = True
        snapshot.restore()
        self._dirty = None
        if release is not None:
            release()

    @contextlib.contextmanager
    def restoring(self, snapshot: Any, release: Callable[[], None] | None = None) -> Iterator[Any]:
        """Run a phase that changes the state; restore ``snapshot`` on any exit, uninterrupted.

        A Ctrl-C deferred by an earlier restore stops here, before the phase starts.
        """
        if self.pending:
            self.pending = False
            raise KeyboardInterrupt
        self._dirty = (snapshot, release)
        self.deferring = False
        try:
            yield snapshot
        finally:
            self._restore(snapshot, release)

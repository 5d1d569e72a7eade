"""InterruptGuard in-process: deferral during restores, re-raise after, a custom handler kept."""

from __future__ import annotations

import os
import signal
import sys

import pytest

from wandb_batchsize.memory.guard import InterruptGuard

pytestmark = pytest.mark.skipif(sys.platform.startswith("win"), reason="POSIX signals")


class Snapshot:
    """Counts restores; sends itself a SIGINT while restoring (a Ctrl-C mid-restore)."""

    def __init__(self, interrupt: bool = False) -> None:
        self.restores = 0
        self.interrupt = interrupt
        self.completed = 0

    def restore(self) -> None:
        self.restores += 1
        if self.interrupt:
            os.kill(os.getpid(), signal.SIGINT)
        self.completed += 1


def test_a_ctrl_c_during_the_restore_is_deferred_then_raised():
    snap = Snapshot(interrupt=True)
    with pytest.raises(KeyboardInterrupt), InterruptGuard() as guard, guard.restoring(snap):
        pass
    assert snap.completed == snap.restores == 1  # the restore finished before the raise
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_a_second_ctrl_c_after_the_first_does_not_cut_the_restore():
    snap = Snapshot(interrupt=True)  # the second SIGINT arrives inside the restore
    with pytest.raises(KeyboardInterrupt), InterruptGuard() as guard, guard.restoring(snap):
        os.kill(os.getpid(), signal.SIGINT)
        for _ in range(10**6):  # the first SIGINT raises here
            pass
    assert snap.completed == 1


def test_a_deferred_ctrl_c_stops_before_the_next_phase():
    first, second = Snapshot(interrupt=True), Snapshot()
    ran = []
    with pytest.raises(KeyboardInterrupt), InterruptGuard() as guard:
        with guard.restoring(first):
            pass
        with guard.restoring(second):
            ran.append(True)
    assert not ran and first.completed == 1 and second.restores == 0


def test_a_custom_handler_is_called_instead_of_raising():
    calls = []
    previous = signal.signal(signal.SIGINT, lambda s, f: calls.append(s))
    try:
        snap = Snapshot()
        with InterruptGuard() as guard, guard.restoring(snap):
            os.kill(os.getpid(), signal.SIGINT)
            for _ in range(10**5):
                pass
        assert calls == [signal.SIGINT] and snap.completed == 1
    finally:
        signal.signal(signal.SIGINT, previous)

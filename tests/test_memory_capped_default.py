"""The returned size trains right after the search, with the DEFAULT allocator settings.

A capped child (``RLIMIT_AS``, see test_memory_capped.py) with none of the
``MALLOC_*`` / oneDNN variables the benchmark uses to make the true maximum
reproducible: the probes near the cap leave address space behind, so a size
the search saw fit can fail afterwards (seen: a search found 256 on the conv
+ attention model and 0 of 20 steps at 224 ran). ``find_batch_size`` must
hand back a size that trains 20 steps right after it, for PyTorch and Keras
(TensorFlow with ``TF_ENABLE_ONEDNN_OPTS=0``, as documented: its oneDNN
kernels abort at the cap instead of raising).

TensorFlow under the default glibc settings needs more memory over its first
steps (the heap fragments as glibc's mmap threshold moves): 3 confirmation
steps at 328 passed and the run then failed at step 6 or 15 (2 of 3 runs).
The Keras test therefore confirms with ``confirm_steps=20`` (4 of 4 runs then
trained). PyTorch's capped child occasionally dies with SIGSEGV inside a
native allocation at the cap (1 run in 11 here, not in our code): that one
case is retried once.
"""

from __future__ import annotations

import sys

import pytest
from test_memory_capped import _bench

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="RLIMIT_AS and /proc are Linux features"
)


def _check(report: dict) -> None:
    assert report["ooms"] >= 1, report  # the cap was reached for real
    assert report["confirmed"], report
    assert report["train_ok"] and report["train_steps"] == 20, report
    assert report["batch_size"] <= report["searched_batch_size"], report


def _run(task: str, method: str, cap_mb: int) -> dict:
    bench = _bench()
    for attempt in range(2):
        try:
            return bench.run_child(
                task,
                method,
                cap_mb,
                train_steps=20,
                default_allocator=True,
                scan=False,
                timeout=200,
            )
        except RuntimeError as exc:
            if "rc=-11" not in str(exc) or attempt:
                raise
    raise AssertionError("unreachable")


@pytest.mark.timeout(400)
def test_torch_conv_attention_trains_after_the_search_with_the_default_allocator():
    _check(_run("convattn", "ours", 256))


@pytest.mark.timeout(400)
def test_keras_trains_after_the_search_with_the_default_allocator():
    pytest.importorskip("tensorflow")
    _check(_run("keras", "ours-confirm20", 192))

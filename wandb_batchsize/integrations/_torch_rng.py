"""Every random stream of a PyTorch process put back as it was: for the finders' batch draws.

Drawing the probe's first batch from a shuffled data loader takes a seed from
torch's global generator; the search itself restores the RNG bitwise, but
the draw happens before its snapshot. :func:`same_rng` restores torch's CPU
generator (and the CUDA generator of ``device``), Python's ``random`` and
NumPy's global state on exit.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any


@contextlib.contextmanager
def same_rng(device: Any = None) -> Iterator[None]:
    """Run the block, then put torch's, Python's and NumPy's global RNG states back."""
    import torch

    from wandb_batchsize.backends.base import host_rng_state, restore_host_rng

    host = host_rng_state()
    cuda = [device.index or 0] if getattr(device, "type", "") == "cuda" else []
    try:
        with torch.random.fork_rng(devices=cuda):
            yield
    finally:
        restore_host_rng(host)

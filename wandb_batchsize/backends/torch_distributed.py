"""``torch.distributed`` as the memory search needs it: who we are, and one min-all-reduce.

Nothing is initialised here: a process group exists only when the user's
training set one up (``torch.distributed.init_process_group``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch


def process_group() -> Any | None:
    """``torch.distributed`` when it is initialised with more than one rank, else None."""
    dist = getattr(torch, "distributed", None)
    if dist is None or not dist.is_available() or not dist.is_initialized():
        return None
    return dist if dist.get_world_size() > 1 else None


def world_size() -> int:
    dist = process_group()
    return 1 if dist is None else dist.get_world_size()


def rank() -> int:
    dist = process_group()
    return 0 if dist is None else dist.get_rank()


def _reduce_device(dist: Any) -> torch.device:
    backend = str(dist.get_backend()).lower()
    if "nccl" in backend and torch.cuda.is_available():
        return torch.device("cuda", torch.cuda.current_device())
    if "xccl" in backend and hasattr(torch, "xpu") and torch.xpu.is_available():
        return torch.device("xpu", torch.xpu.current_device())
    return torch.device("cpu")


def all_reduce_min(values: Sequence[float]) -> list[float]:
    """The element-wise minimum of ``values`` over all ranks (``values`` itself alone)."""
    dist = process_group()
    if dist is None:
        return [float(v) for v in values]
    local = torch.tensor([float(v) for v in values], dtype=torch.float64)
    local = local.to(_reduce_device(dist))
    dist.all_reduce(local, op=dist.ReduceOp.MIN)
    return local.cpu().tolist()

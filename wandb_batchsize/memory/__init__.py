"""The memory ceiling: the largest batch size whose training step fits.

``find_batch_size(model, sample)`` for PyTorch and Keras models (see
:mod:`wandb_batchsize.memory.finder`), the framework-free strategy
(:mod:`.search`), one metered probe over a backend (:mod:`.probe`), the
agreement of ranks (:mod:`.distributed`), the confirmation of the returned
size (:mod:`.confirm`), Ctrl-C-safe restores (:mod:`.guard`), the worst-case
batch (:mod:`.worst_case`), the progress table (:mod:`.progress`)
and the gradient-accumulation helper :func:`accumulation_for`. OOM recognition
and memory release are :mod:`wandb_batchsize.backends.oom` (also importable
as ``wandb_batchsize.memory.oom``).

Importing this package imports no framework and no wandb.
"""

from __future__ import annotations

from wandb_batchsize.backends.oom import OOM_TABLE, is_oom_error, release_memory
from wandb_batchsize.memory.confirm import Confirmation, step_down
from wandb_batchsize.memory.distributed import PeerError
from wandb_batchsize.memory.finder import find_batch_size
from wandb_batchsize.memory.result import MemorySearchResult, NoBatchSizeFitsError
from wandb_batchsize.memory.search import (
    CeilingSearch,
    Probe,
    ProbeOutcome,
    SearchOutcome,
    accumulation_for,
    apply_safety,
    run_search,
)

__all__ = [
    "OOM_TABLE",
    "CeilingSearch",
    "Confirmation",
    "MemorySearchResult",
    "NoBatchSizeFitsError",
    "PeerError",
    "Probe",
    "ProbeOutcome",
    "SearchOutcome",
    "accumulation_for",
    "apply_safety",
    "find_batch_size",
    "is_oom_error",
    "release_memory",
    "run_search",
    "step_down",
]

"""``wandb_batchsize.memory.oom``: the documented name of :mod:`wandb_batchsize.backends.oom`.

The OOM table, ``is_oom_error`` and ``release_memory`` live in the backends
layer (every backend uses them); this module *is* that module under its older
name (``sys.modules`` alias), so imports and monkeypatches of either agree.
"""

import sys

from wandb_batchsize.backends import oom as _oom

sys.modules[__name__] = _oom

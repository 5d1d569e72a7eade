"""``wandb_batchsize.memory.meters``: the older name of :mod:`wandb_batchsize.backends.host_memory`.

This module *is* that module (``sys.modules`` alias): ``parse_bytes``,
``format_bytes``, ``Reading``, ``NullMeter``, ``ProcessMeter``, ``host_meter``.
"""

import sys

from wandb_batchsize.backends import host_memory as _host_memory

sys.modules[__name__] = _host_memory

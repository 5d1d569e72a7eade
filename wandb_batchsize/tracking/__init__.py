"""Everything that touches wandb: run handling, charts, offline run files, sweeps.

``wandb`` is imported only when a function here needs it, so the analysis can
run (and return results) with no W&B run, no key and ``WANDB_MODE=disabled``.
"""

"""A demo training task and the program a batch-size sweep runs (needs torch).

- :mod:`.tiny_task`: a tiny, seeded teacher-student classifier trained with SGD on
  the CPU, for examples, sweeps and tests;
- :mod:`.sweep_train`: one W&B training run of it, the program that ``wandb agent``
  and ``wandb-batchsize sweep run`` start (``sweep create``'s default ``--program``).

Importing this package imports nothing heavy; the modules import torch.
"""

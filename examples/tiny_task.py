"""The tiny training task of the examples: :mod:`wandb_batchsize.demo.tiny_task`.

Kept here so that the examples run from this folder (``from tiny_task import
train``); ``python examples/tiny_task.py`` prints the loss-versus-batch-size curve.
"""

from wandb_batchsize.demo.tiny_task import *  # noqa: F403
from wandb_batchsize.demo.tiny_task import __all__, main  # noqa: F401

if __name__ == "__main__":
    main()

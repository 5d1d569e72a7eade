"""The program the shipped sweep templates run: :mod:`wandb_batchsize.demo.sweep_train`.

    python sweeps/train.py --batch_size=64      # offline unless WANDB_MODE is set

Kept as a file so that ``program: sweeps/train.py`` works for ``wandb agent`` from
the repository root; ``wandb-batchsize sweep create`` points at the installed
module's file instead, which works from any directory.
"""

import sys

from wandb_batchsize.demo.sweep_train import main

if __name__ == "__main__":
    sys.exit(main())

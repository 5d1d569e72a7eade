"""``python -m wandb_batchsize`` is the ``wandb-batchsize`` command."""

import sys

from wandb_batchsize.cli import main

sys.exit(main())

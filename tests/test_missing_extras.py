"""A missing optional dependency names the extra to install (issue 14, item 15).

Each case runs in a child process in which the dependency cannot be imported
(a meta-path finder refuses it, as a machine without it would), then uses the
public API the way the README does.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

BLOCK = textwrap.dedent(
    """
    import sys
    class Refuse:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in {blocked!r}:
                raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
    sys.meta_path.insert(0, Refuse())
    """
)


def _run(blocked: set[str], code: str) -> subprocess.CompletedProcess[str]:
    script = BLOCK.format(blocked=sorted(blocked)) + textwrap.dedent(code)
    return subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize(
    ("blocked", "code", "extra"),
    [
        ({"matplotlib"}, "import wandb_batchsize as wbs; wbs.plot", "plot"),
        (
            {"keras", "tensorflow"},
            "import wandb_batchsize as wbs; wbs.integrations.keras.SusceptibilityCallback",
            "tensorflow",
        ),
        (
            {"transformers"},
            "from wandb_batchsize.integrations.transformers import SusceptibilityCallback",
            "transformers",
        ),
        (
            {"torch"},
            "import wandb_batchsize as wbs; wbs.integrations.torch.GradientNoiseScaleMonitor",
            "torch",
        ),
    ],
)
def test_missing_dependency_names_its_extra(blocked, code, extra):
    done = _run(blocked, code)
    assert done.returncode != 0
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("ModuleNotFoundError:")
    assert f"pip install 'wandb-batchsize[{extra}]'" in last


def test_the_core_works_without_any_framework():
    done = _run(
        {"torch", "keras", "tensorflow", "lightning", "transformers", "matplotlib"},
        """
        import numpy as np
        import wandb_batchsize as wbs
        result = wbs.analyze(np.random.default_rng(0).normal(size=400))
        print(result.regime)
        """,
    )
    assert done.returncode == 0, done.stderr

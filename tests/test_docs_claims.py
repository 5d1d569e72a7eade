"""What the README, docs and examples say is true (issue 14, items 13 and 14)."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

import wandb_batchsize as wbs
from wandb_batchsize.monitor import DEFAULT_MAX_OVERHEAD

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text(encoding="utf-8")


def _setup_section() -> str:
    return README.split("## Set-up", 1)[1].split("\n## ", 1)[0]


def test_setup_says_what_each_machine_gets_from_pip():
    text = " ".join(_setup_section().split())
    assert "pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu" in text
    assert "local CPU wheel" in text and "CUDA build" in text
    assert "installs the CPU build of PyTorch" not in text


def test_setup_says_from_a_checkout_and_the_core_dependencies():
    text = " ".join(_setup_section().split())
    assert "pip install wandb-batchsize`" not in text and "from a checkout" in text
    assert "pyyaml" in text and "jsonschema" in text
    assert "ruff" in text  # .ci/run lints as well
    assert "ruff check ." in (REPO / ".ci" / "run").read_text()


def test_ci_setup_block_is_unchanged():
    block = README.split("<!-- ci:setup:start -->", 1)[1].split("<!-- ci:setup:end -->", 1)[0]
    commands = [line for line in block.splitlines() if line and not line.startswith("`")]
    assert commands == [
        'pip install torch==2.13.0 && pip install -e ".[all,dev]"',
        "python -m pytest",
    ]


def test_sweeps_doc_does_not_call_jsonschema_a_dev_dependency():
    text = " ".join((REPO / "docs" / "sweeps.md").read_text().split())
    assert "`jsonschema` is a `dev` dependency" not in text
    assert "`jsonschema` is a core dependency" in text


def test_readme_recommend_keywords_exist():
    call = re.search(r"wbs\.recommend\(([^)]*)\)", README).group(1)
    keywords = re.findall(r"(\w+)=", call)
    assert keywords and set(keywords) <= set(inspect.signature(wbs.recommend).parameters)


@pytest.mark.parametrize("name", ["pytorch_monitor.py", "keras_monitor.py", "lightning_monitor.py"])
def test_monitor_examples_state_the_default_check_budget(name):
    text = (REPO / "examples" / name).read_text()
    comment = " ".join(
        line.strip("# ") for line in text.splitlines() if line.strip().startswith("#")
    )
    assert "default cap" in comment
    assert f"{DEFAULT_MAX_OVERHEAD * 100:g} %" in comment and " 1 %" not in comment


def test_tiny_task_docstring_prints_what_it_says():
    pytest.importorskip("torch")
    from wandb_batchsize.demo import tiny_task

    doc = tiny_task.__doc__
    said = float(re.search(r"result\.val_loss.*\n\s*(\d\.\d+)\.\.\.", doc).group(1))
    result = tiny_task.train(batch_size=32, lr=0.1, epochs=2, seed=0)
    assert result.val_loss == pytest.approx(said, abs=0.01)

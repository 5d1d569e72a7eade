"""The README's runnable code blocks run, offline, exactly as written.

Convention: a fenced block whose info string is ``python runnable`` or ``bash
runnable`` is executed; any other block (``python``, ``bash``, ...) is only
shown. The runnable blocks of one file run in order, each in a fresh process,
in one temporary directory (so a later block sees the files an earlier one
wrote), with ``examples/`` and ``sweeps/`` of the repository linked into it so
that ``python examples/...`` works as from the repository root. W&B is offline
and hermetic there (``WANDB_MODE=offline``, every ``WANDB_*`` directory inside
the temporary directory, no API key), matplotlib is headless.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import WANDB_ENV_VARS

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
DOCS = [README, REPO / "docs" / "what_you_will_see.md"]
RUNNABLE = {"python", "bash"}
BLOCK_TIMEOUT_S = 300
LINKED_DIRS = ("examples", "sweeps")

_FENCE = re.compile(r"^(?P<indent> {0,3})(?P<fence>`{3,}|~{3,})(?P<info>.*)$")


@dataclass(frozen=True)
class Block:
    """One fenced code block: its language, the words after it, its code, its line."""

    language: str
    options: tuple[str, ...]
    code: str
    line: int  # 1-based line of the opening fence

    @property
    def runnable(self) -> bool:
        return self.language in RUNNABLE and "runnable" in self.options


def code_blocks(text: str) -> list[Block]:
    """Every fenced block of a CommonMark document (backtick or tilde fences).

    A block closes at a fence of the same character at least as long as the
    opening one, with nothing after it; an unclosed block runs to the end.
    """
    blocks: list[Block] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        match = _FENCE.match(lines[i])
        if not match or (match["fence"][0] == "`" and "`" in match["info"]):
            i += 1
            continue
        fence, indent = match["fence"], len(match["indent"])
        words = match["info"].split()
        start = i
        body: list[str] = []
        i += 1
        while i < len(lines):
            closing = _FENCE.match(lines[i])
            if (
                closing
                and closing["fence"][0] == fence[0]
                and len(closing["fence"]) >= len(fence)
                and not closing["info"].strip()
            ):
                break
            line = lines[i]
            # strip up to the opening fence's indentation, as CommonMark does
            body.append(line[min(indent, len(line) - len(line.lstrip(" "))) :])
            i += 1
        i += 1
        blocks.append(
            Block(
                language=words[0].lower() if words else "",
                options=tuple(w.lower() for w in words[1:]),
                code="\n".join(body) + "\n",
                line=start + 1,
            )
        )
    return blocks


def runnable_blocks(path: Path) -> list[Block]:
    return [b for b in code_blocks(path.read_text(encoding="utf-8")) if b.runnable]


def hermetic_env(workdir: Path) -> dict[str, str]:
    """Offline W&B confined to ``workdir`` (as tests/conftest.py's ``wandb_env``)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    root = workdir / ".wandb_root"
    for var in WANDB_ENV_VARS:
        path = root if var == "WANDB_DIR" else root / var.lower()
        path.mkdir(parents=True, exist_ok=True)
        env[var] = str(path)
    env.update(
        WANDB_MODE="offline",
        WANDB_SILENT="true",
        WANDB_CONSOLE="off",
        MPLBACKEND="Agg",
        NETRC=str(workdir / ".netrc-none"),  # no account, even if this machine has one
        PYTHONUNBUFFERED="1",
        TF_CPP_MIN_LOG_LEVEL="3",
    )
    return env


def prepare_workdir(workdir: Path) -> None:
    for name in LINKED_DIRS:
        if (REPO / name).is_dir() and not (workdir / name).exists():
            (workdir / name).symlink_to(REPO / name, target_is_directory=True)


def run_block(block: Block, workdir: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    script = workdir / f"block_{block.line}.{'py' if block.language == 'python' else 'sh'}"
    script.write_text(block.code, encoding="utf-8")
    cmd = (
        [sys.executable, str(script)]
        if block.language == "python"
        else ["bash", "-eo", "pipefail", str(script)]
    )
    return subprocess.run(
        cmd,
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=BLOCK_TIMEOUT_S,
        stdin=subprocess.DEVNULL,
    )


def run_all(path: Path, workdir: Path) -> list[tuple[Block, subprocess.CompletedProcess]]:
    prepare_workdir(workdir)
    env = hermetic_env(workdir)
    done = []
    for block in runnable_blocks(path):
        proc = run_block(block, workdir, env)
        done.append((block, proc))
        assert proc.returncode == 0, (
            f"{path.name}:{block.line}: the {block.language} runnable block exited "
            f"{proc.returncode}\n--- code ---\n{block.code}--- stdout ---\n{proc.stdout[-3000:]}"
            f"\n--- stderr ---\n{proc.stderr[-3000:]}"
        )
    return done


# -- the documents ---------------------------------------------------------------


def test_readme_has_runnable_blocks():
    blocks = runnable_blocks(README)
    assert blocks, (
        "README.md has no runnable code block: mark the quick start's fence "
        "```python runnable or ```bash runnable (see tests/test_readme.py)"
    )


@pytest.mark.parametrize(
    "path", [p for p in DOCS if p.exists()], ids=lambda p: str(p.relative_to(REPO))
)
def test_runnable_blocks_run_offline(path, tmp_path):
    run_all(path, tmp_path)


def test_quick_start_run_holds_the_final_result(tmp_path):
    """The quick start's run, read back from its files: the monitor's final result is in
    the summary, the finder's size in the config (issue 14, item 14)."""
    from wandb_batchsize.tracking.offline import read_run

    blocks = [b for b in runnable_blocks(README) if b.language == "python"]
    prepare_workdir(tmp_path)
    proc = run_block(blocks[0], tmp_path, hermetic_env(tmp_path))
    assert proc.returncode == 0, proc.stderr[-3000:]
    (run_dir,) = sorted((tmp_path / ".wandb_root" / "wandb").glob("offline-run-*"))
    run = read_run(run_dir)
    assert run.config["batch_size_source"] == "dynamic_finder"
    finals = {k for k in run.summary if k.startswith("susceptibility/final/")}
    assert {"susceptibility/final/K_c", "susceptibility/final/steps"} <= finals


_IMAGE = re.compile(r"!\[[^\]]*\]\(([^)\s]+)")


@pytest.mark.parametrize(
    "path", [p for p in DOCS if p.exists()], ids=lambda p: str(p.relative_to(REPO))
)
def test_local_images_exist(path):
    """Figures are linked relative to the repository root (README material)."""
    links = [u for u in _IMAGE.findall(path.read_text(encoding="utf-8")) if "://" not in u]
    missing = [u for u in links if not (REPO / u).is_file()]
    assert not missing, (
        f"{path.name} links to missing images {missing}: run scripts/make_readme_images.py"
    )


# -- the extractor, on fixtures ----------------------------------------------------

FIXTURE = """\
# What you will see

```python
print("shown, not run")
```

```python runnable
from pathlib import Path
Path("made_by_block_1.txt").write_text("hello")
```

  ~~~bash runnable
  test -f made_by_block_1.txt   # blocks share the directory, in order
  echo "bash ok"
  ~~~

````markdown
```python runnable
raise SystemExit("a block inside another block is text, not code")
```
````

```pycon runnable
>>> not run: only python and bash are runnable
```

```bash
exit 1  # shown only
```
"""


def test_extractor_finds_the_runnable_blocks():
    blocks = code_blocks(FIXTURE)
    assert [(b.language, b.options) for b in blocks] == [
        ("python", ()),
        ("python", ("runnable",)),
        ("bash", ("runnable",)),
        ("markdown", ()),
        ("pycon", ("runnable",)),
        ("bash", ()),
    ]
    runnable = [b for b in blocks if b.runnable]
    assert [b.line for b in runnable] == [7, 12]
    assert runnable[0].code.startswith("from pathlib import Path\n")
    assert runnable[1].code.startswith("test -f made_by_block_1.txt")  # indentation removed
    assert "SystemExit" in blocks[3].code  # the nested fence stayed inside its block


def test_extractor_handles_edge_cases():
    assert code_blocks("no code at all\n") == []
    (unclosed,) = code_blocks("```bash runnable\necho never closed\n")
    assert unclosed.runnable and unclosed.code == "echo never closed\n"
    (inline,) = code_blocks("```python runnable\n``` not a closing fence\nx = 1\n```\n")
    assert inline.code == "``` not a closing fence\nx = 1\n"
    assert code_blocks("``` `inline` ```\n") == []  # backticks in the info string: no fence
    (upper,) = code_blocks("```Python Runnable\npass\n```\n")
    assert upper.runnable


def test_fixture_blocks_run_in_order_in_one_directory(tmp_path):
    doc = tmp_path / "doc.md"
    doc.write_text(FIXTURE)
    work = tmp_path / "work"
    work.mkdir()
    done = run_all(doc, work)
    assert len(done) == 2 and "bash ok" in done[1][1].stdout
    assert (work / "made_by_block_1.txt").read_text() == "hello"


def test_a_failing_block_fails_the_test(tmp_path):
    doc = tmp_path / "doc.md"
    doc.write_text("```bash runnable\nfalse | cat\necho unreachable\n```\n")
    with pytest.raises(AssertionError, match=r"doc.md:1: the bash runnable block exited 1"):
        run_all(doc, tmp_path)


def test_blocks_run_offline_and_hermetic(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_API_KEY", "k" * 40)  # must not reach the block
    doc = tmp_path / "doc.md"
    doc.write_text(
        "```python runnable\n"
        "import os, wandb\n"
        "assert 'WANDB_API_KEY' not in os.environ\n"
        "assert os.environ['WANDB_MODE'] == 'offline'\n"
        "run = wandb.init(project='readme', settings=wandb.Settings(silent=True, console='off',"
        " x_disable_stats=True, disable_git=True, save_code=False))\n"
        "run.log({'loss': 1.0})\n"
        "run.finish()\n"
        "```\n"
    )
    work = tmp_path / "work"
    work.mkdir()
    run_all(doc, work)
    runs = list((work / ".wandb_root" / "wandb").glob("offline-run-*"))
    assert len(runs) == 1 and list(runs[0].glob("run-*.wandb"))
    if (REPO / "examples").is_dir():
        assert (work / "examples").resolve() == (REPO / "examples").resolve()

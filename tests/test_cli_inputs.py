"""``wandb-batchsize analyze`` on awkward inputs and options (issue 14, items 5-7):
huge lines, BOMs, plot paths, a closed pipe, contradictory options, the vectorised parser."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import numpy as np
import pytest

from wandb_batchsize.cli import UsageError, main
from wandb_batchsize.cli.table_input import parse_table


def cli(*args: str, stdin: bytes | None = None, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "wandb_batchsize", "analyze", *args],
        input=stdin,
        capture_output=True,
        timeout=120,
        cwd=cwd,
    )


def series_file(tmp_path, n: int = 600) -> str:
    path = tmp_path / "s.txt"
    values = np.sin(np.arange(n) / 10) + np.random.default_rng(0).normal(size=n)
    path.write_text("\n".join(f"{v:.5f}" for v in values) + "\n")
    return str(path)


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err
    return err


# ------------------------------------------------------------ item 6: huge lines, BOM
def test_one_line_of_a_million_numbers_is_the_series(tmp_path, capsys):
    path = tmp_path / "one_line.csv"
    path.write_text(",".join(f"{v:.4f}" for v in np.random.default_rng(1).normal(size=10**6)))
    assert main(["analyze", str(path), "--json", "--permutations", "0"]) == 0
    assert json.loads(capsys.readouterr().out)["n"] == 10**6


@pytest.mark.parametrize(
    "content",
    [
        ",".join(f"c{i}" for i in range(100_000)) + "\n" + ",".join(["1"] * 100_000) + "\n",
        "loss\n1\n" + "x" * 1_000_000 + "\n",
    ],
    ids=["100k columns", "1 MB cell"],
)
def test_error_quoting_a_huge_line_is_cut(tmp_path, capsys, content):
    path = tmp_path / "huge.csv"
    path.write_text(content)
    assert main(["analyze", str(path)]) == 2
    err = one_line_error(capsys)
    assert len(err) < 600 and "more" in err


def test_bom_is_stripped_on_stdin_and_in_files(tmp_path):
    data = "\ufeffloss,step\n".encode() + b"".join(f"{v},1\n".encode() for v in range(100))
    (tmp_path / "bom.csv").write_bytes(data)
    for proc in (cli("-", "-c", "loss", "--json", stdin=data), cli(str(tmp_path / "bom.csv"))):
        assert proc.returncode == 0, proc.stderr
        assert b"\\ufeff" not in proc.stdout and b"K_c" in proc.stdout


# ------------------------------------------------------------ item 6: --plot
def test_plot_into_a_directory(tmp_path, capsys):
    (tmp_path / "figs").mkdir()
    for arg in ("figs", "figs/"):
        assert main(["analyze", series_file(tmp_path), "--plot", f"{tmp_path}/{arg}"]) == 0
        assert f"plot written to {tmp_path / 'figs' / 'susceptibility.png'}" in (
            capsys.readouterr().out
        )
    assert [p.name for p in (tmp_path / "figs").iterdir()] == ["susceptibility.png"]
    assert not (tmp_path / "figs.png").exists()


def test_plot_name_without_extension_gets_png_and_says_so(tmp_path, capsys):
    assert main(["analyze", series_file(tmp_path), "--plot", str(tmp_path / "chi")]) == 0
    assert f"plot written to {tmp_path / 'chi.png'}" in capsys.readouterr().out
    assert (tmp_path / "chi.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize(
    ("arg", "message"),
    [
        ("x.foo", "cannot write .foo files; use one of: "),
        ("missing_dir/", "no such directory"),
        ("missing_dir/chi.png", "no such directory"),
    ],
)
def test_bad_plot_path_fails_first_in_one_line(tmp_path, capsys, arg, message):
    assert main(["analyze", series_file(tmp_path), "--plot", f"{tmp_path}/{arg}"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""  # checked before the analysis prints anything
    err = captured.err.strip()
    assert message in err and "\n" not in err and "Traceback" not in err
    if arg == "x.foo":
        assert ".png" in err and ".svg" in err and ".pdf" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.txt"]  # no hidden .png either


def test_closed_stdout_is_not_a_traceback(tmp_path):
    proc = subprocess.Popen(
        [sys.executable, "-m", "wandb_batchsize", "analyze", series_file(tmp_path), "-v"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    proc.stdout.close()  # as `| head -1` does once it has its line
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 141
    assert "Traceback" not in err and "BrokenPipe" not in err


# ------------------------------------------------------------ item 5: options, constant input
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["-c", "loss", "--K-min", "50", "--K-max", "10"],
            "K_max=10 must be greater than K_min=50",
        ),
        (["--mode", "sweep", "--K-min", "3"], "--K-min: online-mode options"),
        (["-c", "loss", "--json", "-v"], "--json and -v"),
    ],
)
def test_contradictory_options_exit_2(tmp_path, capsys, args, message):
    path = tmp_path / "t.csv"
    path.write_text("batch_size,loss\n" + "".join(f"{2**i},{1 / i}\n" for i in range(1, 30)))
    assert main(["analyze", str(path), *args]) == 2
    assert message in one_line_error(capsys)


def test_constant_series_verdict_says_degenerate(tmp_path):
    path = tmp_path / "flat.txt"
    path.write_text("0.5\n" * 500)
    proc = cli(str(path))
    out = proc.stdout.decode()
    assert proc.returncode == 0 and "regime      = degenerate" in out and "not a finding" in out
    assert b"RuntimeWarning" not in proc.stderr  # the warning is in the summary, once


# ------------------------------------------------------------ item 7: the vectorised parser
def test_missing_cells_text_columns_and_line_numbers():
    text = "# exported\n\nstep,loss,name\n1,0.5,a\n2,NA,b\n\n3,,c\n4,null,d\n5,0.25,e\n"
    table = parse_table(text, "t.csv")
    np.testing.assert_array_equal(table.column("step"), [1, 2, 3, 4, 5])
    np.testing.assert_array_equal(table.column("loss"), [0.5, np.nan, np.nan, np.nan, 0.25])
    with pytest.raises(UsageError, match=r"non-numeric value 'a' at line 4, column 'name'"):
        table.column("name")
    with pytest.raises(UsageError, match="line 4 of t.csv has 4 fields, expected 3"):
        parse_table("#\nstep,loss,name\n1,2,a\n1,2,a,b\n", "t.csv")
    crlf = parse_table(b"loss\r\n1\r\n2\r\n", "w.csv")
    np.testing.assert_array_equal(crlf.column(None), [1, 2])


def test_parsing_is_vectorised():
    rows = 300_000
    values = np.random.default_rng(2).normal(size=rows)
    text = "step,loss,lr\n" + "".join(f"{i},{v:.6f},0.1\n" for i, v in enumerate(values))
    t0 = time.perf_counter()
    np.loadtxt(text.splitlines()[1:], delimiter=",", usecols=[1])
    reference = time.perf_counter() - t0
    t0 = time.perf_counter()
    parsed = parse_table(text, "big.csv").column("loss")
    ours = time.perf_counter() - t0
    np.testing.assert_allclose(parsed, values, atol=5e-7)
    assert ours < 3 * reference + 0.1  # the cell-by-cell parser took ~10x numpy's reader

"""``wandb-batchsize analyze`` as a user runs it: files, stdin, JSON, plots, bad input."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from wandb_batchsize.cli import main


def _reject_constant(token: str) -> None:
    raise AssertionError(f"non-strict JSON token {token}")


@pytest.fixture
def ar1_csv(tmp_path):
    rng = np.random.default_rng(3)
    x = np.empty(2000)
    x[0] = 0.0
    for i in range(1, len(x)):
        x[i] = 0.8 * x[i - 1] + rng.normal()
    path = tmp_path / "losses.csv"
    lines = ["step,loss,lr"] + [f"{i},{v:.6f},0.1" for i, v in enumerate(x)]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def sweep_csv(tmp_path):
    rows = ["batch_size,loss"]
    for b in (16, 32, 64, 128, 256, 512):
        for seed in range(2):
            rows.append(f"{b},{1.0 + 0.5 * np.log2(b / 16) ** 2 / 10 + 0.01 * seed:.5f}")
    path = tmp_path / "sweep.csv"
    path.write_text("\n".join(rows) + "\n")
    return path


def test_csv_column_summary(ar1_csv, capsys):
    assert main(["analyze", str(ar1_csv), "--column", "loss"]) == 0
    out = capsys.readouterr().out
    assert "K_c" in out and "kappa" in out and "tau_int" in out


def test_json_is_strict_and_complete(ar1_csv, capsys):
    assert main(["analyze", str(ar1_csv), "-c", "loss", "--json", "--K-max", "100"]) == 0
    doc = json.loads(capsys.readouterr().out, parse_constant=_reject_constant)
    for key in (
        "K_c",
        "kappa",
        "alpha",
        "alpha_se",
        "p_iid",
        "K_values",
        "V_values",
        "chi_values",
        "is_significant",
        "regime",
        "tau_int",
        "ess",
        "K_corr",
    ):
        assert key in doc
    assert max(doc["K_values"]) <= 100


def test_verbose_table_marks_kc(ar1_csv, capsys):
    assert main(["analyze", str(ar1_csv), "-c", "loss", "-v"]) == 0
    out = capsys.readouterr().out
    assert "<- K_c" in out and "chi" in out


def test_plain_numbers_and_tsv(tmp_path, capsys):
    values = np.random.default_rng(0).normal(size=500)
    plain = tmp_path / "plain.txt"
    plain.write_text("\n".join(f"{v}" for v in values))
    assert main(["analyze", str(plain)]) == 0
    assert "K_c" in capsys.readouterr().out
    tsv = tmp_path / "t.tsv"
    tsv.write_text("loss\tother\n" + "\n".join(f"{v}\t1" for v in values))
    assert main(["analyze", str(tsv), "--json"]) == 0  # 'loss' is the default column
    assert json.loads(capsys.readouterr().out)["n"] == 500


def test_plot_is_written(ar1_csv, tmp_path, capsys):
    out = tmp_path / "chi.png"
    assert main(["analyze", str(ar1_csv), "-c", "loss", "--plot", str(out)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_sweep_mode(sweep_csv, tmp_path, capsys):
    plot = tmp_path / "sweep.png"
    code = main(
        [
            "analyze",
            str(sweep_csv),
            "--mode",
            "sweep",
            "--batch-col",
            "batch_size",
            "--metric-col",
            "loss",
            "--json",
            "--plot",
            str(plot),
        ]
    )
    assert code == 0
    doc = json.loads(capsys.readouterr().out, parse_constant=_reject_constant)
    assert doc["counts"] == [2] * 6 and plot.exists()


@pytest.mark.parametrize(
    ("content", "args", "message"),
    [
        ("a,b\n1,2\n", ["-c", "loss"], "available: a, b"),
        ("a,b\n" + "1,2\n" * 30, [], "choose the column with --column"),
        ("loss\n1\n2\nabc\n", [], "non-numeric value 'abc' at line 4"),
        ("loss\n" + "1.5\n" * 7, [], "7"),
        ("", [], "empty"),
        ("batch_size,loss\n8,1\n16,2\n", ["--mode", "sweep"], "2"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys, content, args, message):
    path = tmp_path / "bad.csv"
    path.write_text(content)
    assert main(["analyze", str(path), *args]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err and "Traceback" not in err


def test_missing_file(capsys):
    assert main(["analyze", "/nonexistent/losses.csv"]) == 2
    assert "no such file" in capsys.readouterr().err


def test_console_script_reads_stdin():
    values = "\n".join(str(v) for v in np.random.default_rng(1).normal(size=300))
    proc = subprocess.run(
        [sys.executable, "-m", "wandb_batchsize", "analyze", "-", "--json"],
        input=values,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["n"] == 300


def test_empty_stdin_is_a_clear_error():
    proc = subprocess.run(
        [sys.executable, "-m", "wandb_batchsize", "analyze", "-"],
        input="",
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert "stdin is empty" in proc.stderr and "Traceback" not in proc.stderr


def test_help_lists_every_flag():
    proc = subprocess.run(
        [sys.executable, "-m", "wandb_batchsize", "analyze", "--help"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    for flag in (
        "--column",
        "--mode",
        "--batch-col",
        "--metric-col",
        "--K-min",
        "--K-max",
        "--n-points",
        "--min-batches",
        "--detrend",
        "--json",
        "--plot",
        "-v",
    ):
        assert flag in proc.stdout

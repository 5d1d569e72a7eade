"""Reading numbers for the CLI: CSV/TSV with a header, one number per line, or stdin.

Every problem is a ``UsageError`` with one line that says what was wrong and
where, never a traceback.
"""

from __future__ import annotations

import csv
import io
import math
import sys
from dataclasses import dataclass

from wandb_batchsize.cli import UsageError

MISSING = {"", "nan", "NaN", "NA", "null", "None"}


@dataclass(frozen=True)
class NumberTable:
    """Columns of floats read from one input (a plain list is one column, ``value``)."""

    source: str
    columns: dict[str, list[float]]
    has_header: bool

    def column(
        self, name: str | None, *, role: str = "column", default: str | None = None
    ) -> list[float]:
        """The column called ``name`` (or the only one, or ``default``), else a clear error."""
        names = list(self.columns)
        if name is None:
            if len(names) == 1:
                return self.columns[names[0]]
            if default is not None and default in self.columns:
                return self.columns[default]
            raise UsageError(
                f"{self.source} has {len(names)} columns ({', '.join(names)}); "
                f"choose the {role} with --{role.replace('_', '-')}"
            )
        if name not in self.columns:
            if not self.has_header:
                raise UsageError(f"{self.source} has no header row, so there is no column {name!r}")
            raise UsageError(f"no column {name!r} in {self.source}; available: {', '.join(names)}")
        return self.columns[name]


def _parse_number(cell: str, where: str) -> float:
    text = cell.strip()
    if text in MISSING:
        return math.nan
    try:
        return float(text)
    except ValueError:
        raise UsageError(f"non-numeric value {text!r} at {where}") from None


def _looks_numeric(cells: list[str]) -> bool:
    try:
        for cell in cells:
            if cell.strip() not in MISSING:
                float(cell)
        return True
    except ValueError:
        return False


def read_text(path: str) -> tuple[str, str]:
    """The input's text and a name for messages; ``-`` is standard input."""
    if path == "-":
        if sys.stdin is None or sys.stdin.isatty():
            raise UsageError("no input on stdin: pipe numbers in, or give a file")
        return sys.stdin.read(), "stdin"
    try:
        with open(path, encoding="utf-8-sig") as handle:
            return handle.read(), path
    except FileNotFoundError:
        raise UsageError(f"no such file: {path}") from None
    except IsADirectoryError:
        raise UsageError(f"{path} is a directory, not a file") from None
    except UnicodeDecodeError:
        raise UsageError(f"{path} is not a text file") from None


def parse_table(text: str, source: str) -> NumberTable:
    """Parse CSV (comma), TSV (tab) or whitespace/line-separated numbers."""
    lines = [
        line for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")
    ]
    if not lines:
        raise UsageError(
            f"{source} is empty: expected numbers, one per line, or a CSV with a header"
        )
    first = lines[0]
    delimiter = "\t" if "\t" in first else "," if "," in first else None
    if delimiter is None:
        rows = [line.split() for line in lines]
    else:
        rows = [row for row in csv.reader(io.StringIO("\n".join(lines)), delimiter=delimiter)]
    has_header = not _looks_numeric(rows[0])
    header = [h.strip() for h in rows[0]] if has_header else None
    body = rows[1:] if has_header else rows
    width = len(header) if header else max(len(r) for r in body)
    names = header or (["value"] if width == 1 else [f"column{i + 1}" for i in range(width)])
    if len(set(names)) != len(names):
        raise UsageError(f"{source} has repeated column names: {', '.join(names)}")
    columns: dict[str, list[float]] = {name: [] for name in names}
    offset = 2 if has_header else 1
    for i, row in enumerate(body):
        if len(row) != width:
            raise UsageError(
                f"line {i + offset} of {source} has {len(row)} fields, expected {width}"
            )
        for name, cell in zip(names, row, strict=True):
            where = f"line {i + offset}, column {name!r} of {source}"
            columns[name].append(_parse_number(cell, where))
    if not body:
        raise UsageError(f"{source} has a header but no data rows")
    return NumberTable(source=source, columns=columns, has_header=has_header)


def read_table(path: str) -> NumberTable:
    text, source = read_text(path)
    return parse_table(text, source)

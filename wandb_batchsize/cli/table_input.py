"""Reading numbers for the CLI: CSV/TSV with a header, one number per line, or stdin.

The input is kept as bytes and its columns are parsed by numpy's C reader
(``np.loadtxt``), only the columns a command uses, so other columns may hold
text. Every problem is a ``UsageError`` with one line that says what was wrong
and where (line numbers of the input as given, blank and ``#`` comment lines
included), never a traceback.
"""

from __future__ import annotations

import csv
import io
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from wandb_batchsize.cli import UsageError

MISSING = frozenset({"", "nan", "NaN", "NA", "null", "None"})
#: column names listed in an error message at most.
NAMES_SHOWN = 12
_NUMBER = re.compile(
    r"[+-]?(?:(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|inf(?:inity)?|nan)", re.IGNORECASE
)
_NOT_A_FLOAT = re.compile(r"could not convert string '(.*)' to float64 at row")


def _name_list(names: tuple[str, ...]) -> str:
    shown = ", ".join(names[:NAMES_SHOWN])
    return shown + (f", ... ({len(names) - NAMES_SHOWN} more)" if len(names) > NAMES_SHOWN else "")


def _split(line: str, delimiter: str | None) -> list[str]:
    line = line.split("#", 1)[0]
    if delimiter is None:
        return line.split()
    return next(csv.reader([line], delimiter=delimiter), [])


def _numeric(cell: str) -> bool:
    text = cell.strip()
    return text in MISSING or _NUMBER.fullmatch(text) is not None


def _line_at(data: bytes, pos: int) -> tuple[int, int]:
    """``(start, end)`` offsets of the line holding ``data[pos]``."""
    end = data.find(b"\n", pos)
    return data.rfind(b"\n", 0, pos) + 1, len(data) if end < 0 else end


def _lines(data: bytes, start: int = 0) -> Iterator[tuple[int, str, int]]:
    """``(line number, line, end offset)`` of the lines from ``start`` on that are
    not blank or comments."""
    pos, lineno = start, data.count(b"\n", 0, start)
    while pos < len(data):
        end = data.find(b"\n", pos)
        end = len(data) if end < 0 else end
        lineno += 1
        line = data[pos:end].decode("utf-8", "replace")
        if line.strip() and not line.lstrip().startswith("#"):
            yield lineno, line, end
        pos = end + 1


def _missing_as_nan(data: bytes, delimiter: str | None) -> bytes:
    """``data`` with the MISSING spellings that numpy does not read replaced by ``nan``."""
    token = rb"(?:NA|null|None)"
    if delimiter is None:
        return re.sub(rb"(?<!\S)" + token + rb"(?!\S)", b"nan", data)
    d = re.escape(delimiter.encode())
    spelled = rb"(?:^|(?<=" + d + rb"))[ \t]*" + token + rb"[ \t]*(?=" + d + rb"|$)"
    empty = rb"(?<=" + d + rb")[ \t]*(?=" + d + rb"|$)|^[ \t]*(?=" + d + rb")"
    return re.sub(spelled + rb"|" + empty, b"nan", data, flags=re.MULTILINE)


@dataclass(frozen=True)
class NumberTable:
    """Numeric columns of one input, parsed on demand (a plain list is one column, ``value``)."""

    source: str
    columns: tuple[str, ...]
    has_header: bool
    data: bytes  # the whole input (BOM removed, newlines \n)
    start: int  # offset of the first data line
    delimiter: str | None
    single_row: bool = False  # one header-less row of numbers: the row is the series

    def column(
        self, name: str | None, *, role: str = "column", default: str | None = None
    ) -> np.ndarray:
        """The column called ``name`` (or the only one, or ``default``), else a clear error."""
        names = self.columns
        if name is None:
            if len(names) == 1:
                name = names[0]
            elif default is not None and default in names:
                name = default
            else:
                raise UsageError(
                    f"{self.source} has {len(names)} columns ({_name_list(names)}); "
                    f"choose the {role} with --{role.replace('_', '-')}"
                )
        if name not in names:
            if not self.has_header:
                raise UsageError(f"{self.source} has no header row, so there is no column {name!r}")
            raise UsageError(f"no column {name!r} in {self.source}; available: {_name_list(names)}")
        return self._read(names.index(name))

    def _loadtxt(self, data: bytes, offset: int, index: int) -> np.ndarray:
        stream = io.BytesIO(data)  # shares the buffer: no copy
        stream.seek(offset)
        options: dict = dict(delimiter=self.delimiter, comments="#", ndmin=1, encoding="utf-8")
        if self.delimiter is not None:
            options["quotechar"] = '"'
        if not self.single_row:
            options["usecols"] = [index]
        try:
            return np.loadtxt(stream, dtype=np.float64, **options).reshape(-1)
        except UnicodeDecodeError:
            raise UsageError(f"{self.source} is not UTF-8 text") from None

    def _read(self, index: int) -> np.ndarray:
        try:
            return self._loadtxt(self.data, self.start, index)
        except ValueError:
            pass  # perhaps NA / null / None / empty cells: read them as NaN and try again
        try:
            body = _missing_as_nan(self.data[self.start :], self.delimiter)
            return self._loadtxt(body, 0, index)
        except ValueError as exc:
            raise self._explain(index, exc) from None

    def _bad_cell(self, lineno: int, line: str, index: int) -> UsageError | None:
        cells = _split(line, self.delimiter)
        if self.single_row:
            bad = [i for i, cell in enumerate(cells) if not _numeric(cell)]
            if bad:
                value = cells[bad[0]].strip()
                return UsageError(
                    f"non-numeric value {value!r} at line {lineno}, field {bad[0] + 1} of "
                    f"{self.source}"
                )
        elif len(cells) <= index:
            return UsageError(
                f"line {lineno} of {self.source} has {len(cells)} fields, "
                f"expected {len(self.columns)}"
            )
        elif not _numeric(cells[index]):
            return UsageError(
                f"non-numeric value {cells[index].strip()!r} at line {lineno}, column "
                f"{self.columns[index]!r} of {self.source}"
            )
        return None

    def _explain(self, index: int, error: ValueError) -> UsageError:
        """The first bad cell of column ``index`` (or of the single row), as a one-line error."""
        found = _NOT_A_FLOAT.match(str(error))
        if found and found.group(1).strip():  # look where numpy's bad string occurs first
            needle = found.group(1).encode("utf-8", "replace")
            pos = self.data.find(needle, self.start)
            while pos >= 0:
                start, end = _line_at(self.data, pos)
                line = self.data[start:end].decode("utf-8", "replace")
                if not line.lstrip().startswith("#"):
                    lineno = self.data.count(b"\n", 0, start) + 1
                    problem = self._bad_cell(lineno, line, index)
                    if problem:
                        return problem
                pos = self.data.find(needle, end)
        for lineno, line, _ in _lines(self.data, self.start):  # slow path, small inputs
            problem = self._bad_cell(lineno, line, index)
            if problem:
                return problem
        reason = (str(error).splitlines() or ["unreadable"])[0]
        return UsageError(f"cannot read column {self.columns[index]!r} of {self.source}: {reason}")


#: bytes screened at a time by :func:`check_widths` (small temporaries stay in cache).
CHUNK = 1 << 22


def _odd_lines(data: bytes, start: int, delimiter: str, fields: int) -> Iterator[tuple[int, int]]:
    """``(start, end)`` of the lines from ``start`` on without ``fields - 1`` delimiters."""
    pos = start
    while pos < len(data):
        stop = data.find(b"\n", pos + CHUNK)
        stop = len(data) if stop < 0 else stop + 1
        chunk = np.frombuffer(data, dtype=np.uint8, count=stop - pos, offset=pos)
        ends = np.flatnonzero(chunk == ord("\n"))
        if not ends.size or ends[-1] != chunk.size - 1:
            ends = np.append(ends, chunk.size)  # a last line without a newline
        delims = np.flatnonzero(chunk == ord(delimiter))
        per_line = np.diff(np.searchsorted(delims, ends), prepend=0)
        for i in np.flatnonzero(per_line != fields - 1):
            yield pos + (int(ends[i - 1]) + 1 if i else 0), pos + int(ends[i])
        pos = stop


def check_widths(table: NumberTable) -> None:
    """Every data row of a delimited table has as many fields as the header (vectorised)."""
    if table.delimiter is None or table.single_row:
        return
    width = len(table.columns)
    for start, end in _odd_lines(table.data, table.start, table.delimiter, width):
        line = table.data[start:end].decode("utf-8", "replace")
        if not line.strip() or line.lstrip().startswith("#"):
            continue  # blank, comment, or quoted delimiters: csv decides
        cells = _split(line, table.delimiter)
        if len(cells) != width:
            lineno = table.data.count(b"\n", 0, start) + 1
            raise UsageError(
                f"line {lineno} of {table.source} has {len(cells)} fields, expected {width}"
            )


def read_bytes(path: str) -> tuple[bytes, str]:
    """The input's bytes and a name for messages; ``-`` is standard input."""
    if path == "-":
        if sys.stdin is None or sys.stdin.isatty():
            raise UsageError("no input on stdin: pipe numbers in, or give a file")
        stream = getattr(sys.stdin, "buffer", None)
        data = stream.read() if stream is not None else sys.stdin.read().encode("utf-8")
        return data, "stdin"
    try:
        return Path(path).read_bytes(), path
    except FileNotFoundError:
        raise UsageError(f"no such file: {path}") from None
    except IsADirectoryError:
        raise UsageError(f"{path} is a directory, not a file") from None
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from None


def parse_table(data: bytes | str, source: str) -> NumberTable:
    """Parse CSV (comma), TSV (tab) or whitespace/line-separated numbers."""
    if isinstance(data, str):
        data = data.encode("utf-8")
    data = data.removeprefix(b"\xef\xbb\xbf")
    if b"\r" in data:
        data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    head = list(zip(range(3), _lines(data), strict=False))
    if not head:
        raise UsageError(
            f"{source} is empty: expected numbers, one per line, or a CSV with a header"
        )
    _, first, end = head[0][1]
    if "\ufffd" in first:
        raise UsageError(f"{source} is not UTF-8 text")
    delimiter = "\t" if "\t" in first else "," if "," in first else None
    cells = _split(first, delimiter)
    has_header = not all(_numeric(cell) for cell in cells)
    if has_header:
        names = tuple(cell.strip() for cell in cells)
        if len(set(names)) != len(names):
            raise UsageError(f"{source} has repeated column names: {_name_list(names)}")
        if len(head) < 2:
            raise UsageError(f"{source} has a header but no data rows")
    else:
        names = (
            ("value",) if len(cells) == 1 else tuple(f"column{i + 1}" for i in range(len(cells)))
        )
    single_row = not has_header and len(head) == 1 and len(cells) > 1
    table = NumberTable(
        source=source,
        columns=("value",) if single_row else names,
        has_header=has_header,
        data=data,
        start=end + 1 if has_header else 0,
        delimiter=delimiter,
        single_row=single_row,
    )
    check_widths(table)
    return table


def read_table(path: str) -> NumberTable:
    """Read and parse ``path`` (``-`` for stdin); see :func:`parse_table`."""
    data, source = read_bytes(path)
    return parse_table(data, source)

"""Read the records of a W&B run file (``run-<id>.wandb``) in process.

The file is W&B's transaction log, in the LevelDB log format that the old
``wandb.sdk.internal.datastore`` wrote and read (wandb 0.31 no longer ships a
Python reader; its Go core writes the same format):

- a 7-byte header: ``b":W&B"``, magic ``0xBEE1`` (little-endian uint16), version 0;
- then 32 KiB blocks of chunks; each chunk has a 7-byte header
  ``crc32 (uint32 LE) | length (uint16 LE) | type (uint8)`` followed by
  ``length`` bytes; ``crc32`` is ``zlib.crc32`` of the type byte and the data;
  type 1 is a whole record, 2 / 3 / 4 the first / middle / last piece of one
  that spans blocks; fewer than 7 bytes left in a block are zero padding;
- each record is a serialized ``wandb.proto.wandb_internal_pb2.Record``.

:func:`read_records` never raises for a damaged file: it returns the records it
could read and a one-line reason it stopped early (empty file, not a W&B file,
a checksum mismatch, an unreadable record), or ``None`` when the whole file was
read. A record cut off at the very end (a run killed while writing) is not a
problem: the file simply ends there.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HEADER = struct.pack("<4sHB", b":W&B", 0xBEE1, 0)
BLOCK = 32 * 1024
CHUNK_HEADER = struct.Struct("<IHB")
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4
_TYPE_CRC = {t: zlib.crc32(bytes([t])) for t in (FULL, FIRST, MIDDLE, LAST)}


@dataclass(frozen=True)
class RecordLog:
    """The records read from one run file, and why reading stopped early (or None)."""

    records: list[Any]
    problem: str | None
    truncated: bool  # the file ends inside a record (the writer was stopped)


def _chunks(data: bytes) -> tuple[list[tuple[int, int, bytes]], str | None, bool]:
    """``(offset, type, payload)`` of every chunk; the problem; whether the end was cut."""
    out: list[tuple[int, int, bytes]] = []
    pos, size = len(HEADER), len(data)
    while pos < size:
        left = BLOCK - pos % BLOCK
        if left < CHUNK_HEADER.size:
            pos += left  # zero padding at the end of a block
            continue
        if pos + CHUNK_HEADER.size > size:
            return out, None, True
        crc, length, kind = CHUNK_HEADER.unpack_from(data, pos)
        if kind == 0 and length == 0:  # zero-filled rest of a block
            pos += left
            continue
        end = pos + CHUNK_HEADER.size + length
        if end > size:
            return out, None, True
        if kind not in _TYPE_CRC or length > left - CHUNK_HEADER.size:
            return out, f"corrupt chunk header at byte {pos}", False
        payload = data[pos + CHUNK_HEADER.size : end]
        if zlib.crc32(payload, _TYPE_CRC[kind]) != crc:
            return out, f"checksum mismatch at byte {pos}", False
        out.append((pos, kind, payload))
        pos = end
    return out, None, False


def read_records(path: str | Path) -> RecordLog:
    """Every ``Record`` of the run file at ``path`` (see the module docstring)."""
    from wandb.proto import wandb_internal_pb2 as pb

    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        return RecordLog([], f"cannot read it: {exc.strerror or exc}", False)
    if not data:
        return RecordLog([], "empty file", False)
    if not data.startswith(HEADER[:4]):
        return RecordLog([], "not a W&B run file", False)
    if len(data) < len(HEADER):
        return RecordLog([], None, True)
    if data[: len(HEADER)] != HEADER:
        return RecordLog([], "unsupported run-file version", False)
    chunks, problem, truncated = _chunks(data)
    records: list[Any] = []
    pieces: list[bytes] = []
    start = 0
    for offset, kind, payload in chunks:
        if kind in (FULL, FIRST):
            if pieces:
                problem = f"broken record at byte {start}"
                break
            start = offset
        elif not pieces:
            problem = f"broken record at byte {offset}"
            break
        pieces.append(payload)
        if kind in (FULL, LAST):
            record = pb.Record()
            try:
                record.ParseFromString(b"".join(pieces))
            except Exception:  # noqa: BLE001 - protobuf's DecodeError, whatever the backend
                problem = f"unreadable record at byte {start}"
                break
            records.append(record)
            pieces = []
    return RecordLog(records, problem, truncated or (bool(pieces) and problem is None))

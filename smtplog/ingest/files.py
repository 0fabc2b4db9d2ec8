"""Finding log files, putting rotated copies in order, and reading complete new lines.

A file is known by a fingerprint of its first line, not by its name: after a rename
(mail.log -> mail.log.1), compression (mail.log.1 -> mail.log.2.gz) or a copytruncate,
each copy is recognised and read on from its committed position.
"""

from __future__ import annotations

import glob
import gzip
import hashlib
import os
import re
import struct
import sys
from collections.abc import Iterator
from dataclasses import dataclass

FINGERPRINT_BYTES = 1024  # a first line longer than this is fingerprinted by its start
_ROTATED = re.compile(r"^(?P<base>.+?)(?:[.-](?P<num>\d{1,3}))?(?P<gz>\.gz)?$")
_DATEEXT = re.compile(r"^(?P<base>.+?)-(?P<date>\d{8}(?:\d{2})?)(?P<gz>\.gz)?$")


@dataclass
class LogSource:
    path: str  # "-" for standard input
    fingerprint: str
    mtime: float
    compressed: bool


def expand(patterns: list[str]) -> list[str]:
    """Files named by paths and globs, oldest rotation first. "-" stays as is."""
    paths: list[str] = []
    for pattern in patterns:
        if pattern == "-":
            paths.append("-")
            continue
        matches = sorted(glob.glob(pattern)) if glob.has_magic(pattern) else [pattern]
        paths.extend(p for p in matches if p not in paths)
    return sorted(paths, key=rotation_key)


def rotation_key(path: str) -> tuple:
    """Oldest first: mail.log.31.gz ... mail.log.2.gz, mail.log.1, mail.log; dateext by date."""
    if path == "-":
        return ("\uffff",)
    directory, name = os.path.split(path)
    dated = _DATEEXT.match(name)
    if dated:
        return (directory, dated["base"], 0, dated["date"])
    m = _ROTATED.match(name)
    num = int(m["num"]) if m and m["num"] else 0
    base = m["base"] if m and m["num"] else (name[:-3] if name.endswith(".gz") else name)
    # Higher rotation numbers are older; the live file (no number) is newest.
    return (directory, base, 1, -num) if num else (directory, base, 2, "")


def open_stream(path: str, compressed: bool):
    if path == "-":
        return sys.stdin.buffer
    return gzip.open(path, "rb") if compressed else open(path, "rb")  # noqa: SIM115


def is_gzip(path: str) -> bool:
    with open(path, "rb") as f:
        return f.read(2) == b"\x1f\x8b"


def identify(path: str) -> LogSource | None:
    """The file's fingerprint, or None while it has no complete first line yet."""
    compressed = is_gzip(path)
    try:
        with open_stream(path, compressed) as stream:
            head = stream.read(FINGERPRINT_BYTES)
    except (OSError, EOFError, gzip.BadGzipFile):
        return None
    newline = head.find(b"\n")
    if newline < 0 and len(head) < FINGERPRINT_BYTES:
        return None  # an empty or half-written first line: wait for it
    first = head if newline < 0 else head[: newline + 1]
    digest = hashlib.sha256(first).hexdigest()
    return LogSource(path, digest, os.stat(path).st_mtime, compressed)


def gzip_size(path: str) -> int | None:
    """Uncompressed size from the gzip trailer (mod 2**32), to skip fully read archives."""
    try:
        with open(path, "rb") as f:
            f.seek(-4, os.SEEK_END)
            return struct.unpack("<I", f.read(4))[0]
    except OSError:
        return None


def read_batches(stream, position: int, batch_lines: int) -> Iterator[tuple[list[bytes], int]]:
    """Complete lines after `position`, in batches; each with the position after it.

    A last line without its newline is left for the next run (it is still being written).
    """
    if position:
        if hasattr(stream, "seek") and not isinstance(stream, gzip.GzipFile):
            stream.seek(position)
        else:
            _skip(stream, position)
    carry = b""
    lines: list[bytes] = []
    offset = position
    while True:
        chunk = stream.read(1 << 20)
        if not chunk:
            break
        chunk = carry + chunk
        end = chunk.rfind(b"\n")
        if end < 0:
            carry = chunk
            continue
        carry = chunk[end + 1 :]
        new = chunk[:end].split(b"\n")
        while new:  # fill the batch; its position is the bytes of its lines + newlines
            room = batch_lines - len(lines)
            taken, new = new[:room], new[room:]
            lines += taken
            offset += sum(map(len, taken)) + len(taken)
            if len(lines) >= batch_lines:
                yield lines, offset
                lines = []
    if lines:
        yield lines, offset


def _skip(stream, n: int) -> None:
    while n > 0:
        chunk = stream.read(min(n, 1 << 20))
        if not chunk:
            break
        n -= len(chunk)

"""Finding log files, putting rotated copies in order, and reading complete new lines.

A file is known by a fingerprint of its first line, not by its name: after a rename
(mail.log -> mail.log.1), compression (mail.log.1 -> mail.log.2.gz) or a copytruncate,
each copy is recognised and read on from its committed position. A hash of the end of
the last line read (tail_hash) tells whether the bytes before that position are still
the ones that were read.

Plain Python (no Django import).
"""

from __future__ import annotations

import glob
import gzip
import hashlib
import os
import re
import stat
import struct
import sys
import zlib
from collections.abc import Iterator
from dataclasses import dataclass

from isal import igzip, isal_zlib

from smtplog.postfix.timestamps import starts_with_timestamp

FINGERPRINT_BYTES = 1024  # a first line longer than this is fingerprinted by its start
_SNIFF_BYTES = 8192  # the start of a file looked at to tell a syslog file
_SNIFF_LINES = 20
_TAIL_BYTES = 64
_ROTATED = re.compile(r"^(?P<base>.+?)(?:[.-](?P<num>\d{1,3}))?(?P<gz>\.gz)?$")
_DATEEXT = re.compile(r"^(?P<base>.+?)-(?P<date>\d{8}(?:\d{2})?)(?P<gz>\.gz)?$")
# What reading a damaged or cut gzip file raises (isal's stream is a gzip.GzipFile).
_GZIP_ERRORS = (EOFError, zlib.error, isal_zlib.error, gzip.BadGzipFile)


class NotALog(Exception):
    """The path is not a syslog file (the message says why): it is not read."""


class CutShort(Exception):
    """A compressed file ended before its end marker (still being written, or damaged):
    its complete lines up to there were read."""


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


def log_key(path: str) -> tuple:
    """The log a file is a rotation of (its directory and base name)."""
    return rotation_key(path)[:2]


def open_stream(path: str, compressed: bool):
    if path == "-":
        return sys.stdin.buffer
    # isal's gzip (Intel's ISA-L) inflates a month of rotations in a third of zlib's time.
    return igzip.open(path, "rb") if compressed else open(path, "rb")  # noqa: SIM115


def identify(path: str) -> LogSource | None:
    """The file's fingerprint, or None while it has no complete first line yet.

    Raises NotALog for what is not a syslog file (a directory, a device, a damaged
    archive, a file none of whose first lines starts with a syslog timestamp: JSON,
    binary...), OSError when it cannot be read.
    """
    info = os.stat(path)
    if stat.S_ISDIR(info.st_mode):
        raise NotALog("it is a directory")
    if not stat.S_ISREG(info.st_mode):
        raise NotALog("it is not a regular file")
    with open(path, "rb") as f:
        raw = f.read(_SNIFF_BYTES * 8)
    compressed = raw[:2] == b"\x1f\x8b"
    if compressed:
        try:  # no end marker needed: an archive being written shows its start
            head = zlib.decompressobj(wbits=31).decompress(raw, _SNIFF_BYTES)
        except zlib.error:
            raise NotALog("a damaged gzip file") from None
    else:
        head = raw[:_SNIFF_BYTES]
    start = head[:FINGERPRINT_BYTES]
    newline = start.find(b"\n")
    if newline < 0 and len(start) < FINGERPRINT_BYTES:
        return None  # an empty or half-written first line: wait for it
    if not _looks_like_syslog(head):
        raise NotALog("not a syslog file: none of its first lines starts with a syslog timestamp")
    first = start if newline < 0 else start[: newline + 1]
    digest = hashlib.sha256(first).hexdigest()
    return LogSource(path, digest, info.st_mtime, compressed)


def _looks_like_syslog(head: bytes) -> bool:
    lines = head.split(b"\n")
    if len(lines) > 1:
        lines.pop()  # cut by the sniff (or empty after the last newline)
    return any(starts_with_timestamp(line.lstrip(b"\x00")) for line in lines[:_SNIFF_LINES])


def tail_hash(before: bytes) -> str:
    """A hash of the end of the last line of `before` (the bytes up to a read position,
    or just the last line with its newline): its last 64 bytes at most."""
    end = before[-_TAIL_BYTES - 1 :]
    start = end.rfind(b"\n", 0, len(end) - 1) + 1
    return hashlib.blake2b(end[start:], digest_size=8).hexdigest()


def tail_at(path: str, position: int) -> str:
    """tail_hash of a plain file's bytes before `position` ("" past its end)."""
    with open(path, "rb") as f:
        f.seek(max(position - _TAIL_BYTES - 1, 0))
        before = f.read(min(position, _TAIL_BYTES + 1))
    return tail_hash(before) if len(before) == min(position, _TAIL_BYTES + 1) else ""


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
    A compressed stream that ends early gives its complete lines, then raises CutShort.
    """
    compressed = isinstance(stream, gzip.GzipFile)
    if position:
        if hasattr(stream, "seek") and not compressed:
            stream.seek(position)
        else:
            try:
                _skip(stream, position)
            except _GZIP_ERRORS:
                return  # it ends before the position: nothing new in it
    carry = b""
    lines: list[bytes] = []
    offset = position
    cut = False
    while True:
        try:
            chunk = stream.read(1 << 20)
        except _GZIP_ERRORS:
            if not compressed:
                raise
            chunk, cut = b"", True
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
    if cut:
        raise CutShort


def _skip(stream, n: int) -> None:
    while n > 0:
        chunk = stream.read(min(n, 1 << 20))
        if not chunk:
            break
        n -= len(chunk)

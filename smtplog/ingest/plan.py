"""Planning a run: which files are worth opening, how much is left to read, and which
files go to which worker process (one relay's files to one worker)."""

from __future__ import annotations

import os

from django.conf import settings
from django.db import connection

from smtplog.ingest import files, parallel
from smtplog.ingest.summary import Summary
from smtplog.models import LogFile
from smtplog.postfix.parser import LineParser

# Lines read from the start of a file to find which relay it belongs to.
_PROBE_BYTES = 1 << 20


def survey(paths: list[str], summary: Summary) -> tuple[dict, dict[str, int]]:
    """The paths worth opening, by path (their LogSource, or None when they are read as
    they come: standard input, a file with no first line yet or that cannot be opened),
    and the bytes each has left to read. Files that are not logs are refused here."""
    sources: dict[str, files.LogSource | None] = {}
    for path in paths:
        try:
            sources[path] = None if path == "-" else files.identify(path)
        except files.NotALog as exc:
            summary.notes.append(f"{path}: not read: {exc}")
        except OSError:
            sources[path] = None  # reported when it is read
    known = [source for source in sources.values() if source is not None]
    positions = dict(
        LogFile.objects.filter(
            fingerprint__in=[source.fingerprint for source in known]
        ).values_list("fingerprint", "position")
    )
    unread = {
        source.path: unread_bytes(source, positions.get(source.fingerprint, 0)) for source in known
    }
    return sources, unread


def relay_groups(
    paths: list[str], sources: dict, unread: dict[str, int], tz
) -> list[tuple[str, list[str]]] | None:
    """The files by relay, largest first, when they are worth reading side by side.

    None (read them in this process) on SQLite, inside a transaction (tests), with one
    relay or little to read, or when a file's relay cannot be told from its start.
    """
    if (
        connection.vendor != "postgresql"
        or connection.in_atomic_block
        or settings.SMTPLOG_INGEST_WORKERS < 2
        or any(sources[path] is None for path in paths)
        or sum(unread.values()) < settings.SMTPLOG_INGEST_PARALLEL_BYTES
        or not parallel.can_fork()
    ):
        return None
    groups: dict[str, list[str]] = {}
    sizes: dict[str, int] = {}
    for path in paths:
        try:
            relay = _first_relay(sources[path], tz)
        except (OSError, EOFError):
            return None
        if relay is None:
            return None
        groups.setdefault(relay, []).append(path)
        sizes[relay] = sizes.get(relay, 0) + unread[path]
    if len(groups) < 2:
        return None
    return sorted(groups.items(), key=lambda group: -sizes[group[0]])


def _first_relay(source: files.LogSource, tz) -> str | None:
    """The relay host of the file's first Postfix line (within its first MiB)."""
    parser = LineParser(tz)
    read = 0
    with files.open_stream(source.path, source.compressed) as stream:
        for line in stream:
            read += len(line)
            if read > _PROBE_BYTES or not line.endswith(b"\n"):
                break
            rec = parser.parse(line)
            if rec is not None:
                return rec.host
    return None


def unread_bytes(source: files.LogSource, stored: int) -> int:
    size = file_size(source) or 0
    return max(size - stored % 2**32 if source.compressed else size - stored, 0)


def file_size(source: files.LogSource) -> int | None:
    """Bytes there are to read (uncompressed), for the dashboard's lag."""
    if source.path == "-":
        return None
    if source.compressed:
        return files.gzip_size(source.path)
    return os.path.getsize(source.path)

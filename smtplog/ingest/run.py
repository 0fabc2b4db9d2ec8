"""One ingestion run over a set of log files: the function the command and the task call."""

from __future__ import annotations

import concurrent.futures
import contextlib
import datetime as dt
import fcntl
import functools
import hashlib
import logging
import os
import time
import zoneinfo
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings
from django.db import connection
from django.utils import timezone

from smtplog.ingest import files, parallel, persist
from smtplog.models import LogFile
from smtplog.postfix.parser import LineParser

_LOCK = int.from_bytes(hashlib.sha256(b"smtplog-ingest").digest()[:8], "big", signed=True)
# Held (shared) by the sessions that write batches beside the one holding the ingest lock
# (a writer thread's, a forked worker's), until they close: a new run first waits for the
# sessions of a killed run's writers to end (their last commit may be in flight).
WRITERS_LOCK = int.from_bytes(
    hashlib.sha256(b"smtplog-ingest-writers").digest()[:8], "big", signed=True
)
# Lines read from the start of a file to find which relay it belongs to.
_PROBE_BYTES = 1 << 20

log = logging.getLogger(__name__)


class IngestBusy(Exception):
    """Another ingester holds the lock."""


class IngestFailed(Exception):
    """An ingest worker process failed; what was committed before stays."""


@dataclass
class Summary:
    files: int = 0
    lines: int = 0
    parsed: int = 0
    events: int = 0
    messages: int = 0
    skipped: Counter = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def lines_per_second(self) -> float:
        return self.lines / self.seconds if self.seconds else 0.0

    def add(self, other: Summary) -> None:
        for name in ("files", "lines", "parsed", "events", "messages", "seconds"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.skipped.update(other.skipped)
        self.errors.extend(other.errors)


@contextlib.contextmanager
def ingest_lock(wait: bool = True):
    """One ingester at a time, across processes and hosts.

    The correlation state (in-flight messages) spans files, rotations and relays, so a
    lock per file is not enough: two ingesters reading two files of one relay would each
    hold a stale copy of that relay's in-flight messages. PostgreSQL: a session advisory
    lock; SQLite (one host): an flock next to the database.
    """
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            fn = "pg_advisory_lock" if wait else "pg_try_advisory_lock"
            cursor.execute(f"SELECT {fn}(%s)", [_LOCK])
            if not wait and not cursor.fetchone()[0]:
                raise IngestBusy
            cursor.execute("SELECT pg_advisory_lock(%s)", [WRITERS_LOCK])
            cursor.execute("SELECT pg_advisory_unlock(%s)", [WRITERS_LOCK])
        try:
            yield
        finally:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s)", [_LOCK])
        return
    path = Path(settings.VAR_DIR) / "ingest.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            raise IngestBusy from None
        yield


def ingest(
    patterns: list[str], progress: Callable[[int], None] | None = None, wait: bool = True
) -> Summary:
    """Ingest every complete new line of the files, oldest rotation first."""
    started = time.monotonic()
    summary = Summary()
    tz = zoneinfo.ZoneInfo(settings.TIME_ZONE)
    with ingest_lock(wait=wait):
        _fast_commits()  # this session holds the ingest lock: no WRITERS_LOCK needed
        paths = every_path = files.expand(patterns)
        groups = _relay_groups(paths, tz)
        if groups:
            try:
                done, paths = parallel.run(
                    groups, settings.SMTPLOG_INGEST_WORKERS, ingest_relay, writer_session, progress
                )
            except parallel.WorkerFailed as exc:
                raise (IngestBusy if exc.busy else IngestFailed)(str(exc)) from None
            for part in done:
                if part is not None:
                    summary.add(part)
            paths = sorted(paths, key=files.rotation_key)
        if paths:
            correlator = persist.load_correlator(tz, settings.SMTPLOG_INTERNAL_NEXT_HOPS)
            with Writer() as writer:
                for path in paths:
                    _ingest_path(path, correlator, tz, writer, progress, summary)
        summary.files = len(every_path)
    summary.seconds = time.monotonic() - started
    return summary


def ingest_relay(relay: str, paths: list[str], progress: Callable[[int], None]) -> Summary:
    """One relay's files, in order, in this process (an ingest worker)."""
    tz = zoneinfo.ZoneInfo(settings.TIME_ZONE)
    summary = Summary()
    try:
        correlator = persist.load_correlator(tz, settings.SMTPLOG_INTERNAL_NEXT_HOPS, relay)
        with Writer(threaded=False) as writer:
            for path in paths:
                _ingest_path(path, correlator, tz, writer, progress, summary, relay)
    except Exception as exc:
        exc.summary = summary  # what was committed before it
        raise
    return summary


def _ingest_path(
    path: str, correlator, tz, writer: Writer, progress, summary: Summary, relay: str | None = None
) -> None:
    try:
        _ingest_file(path, correlator, tz, writer, progress, summary, relay)
    except OSError as exc:
        summary.errors.append(f"{path}: {exc.strerror or exc}")
        log.warning("cannot read %s: %s", path, exc)


def _relay_groups(paths: list[str], tz) -> list[tuple[str, list[str]]] | None:
    """The files by relay, largest first, when they are worth reading side by side.

    None (read them in this process) on SQLite, inside a transaction (tests), with one
    relay or little to read, or when a file's relay cannot be told from its start.
    """
    if (
        connection.vendor != "postgresql"
        or connection.in_atomic_block
        or settings.SMTPLOG_INGEST_WORKERS < 2
        or "-" in paths
        or not parallel.can_fork()
    ):
        return None
    try:
        sources = [files.identify(path) for path in paths]
    except OSError:
        return None  # reported when read in this process
    if None in sources:
        return None
    positions = dict(
        LogFile.objects.filter(
            fingerprint__in=[source.fingerprint for source in sources]
        ).values_list("fingerprint", "position")
    )
    unread = [_unread_bytes(source, positions.get(source.fingerprint, 0)) for source in sources]
    if sum(unread) < settings.SMTPLOG_INGEST_PARALLEL_BYTES:
        return None
    groups: dict[str, list[str]] = {}
    sizes: dict[str, int] = {}
    for source, size in zip(sources, unread, strict=True):
        try:
            relay = _first_relay(source, tz)
        except (OSError, EOFError):
            return None
        if relay is None:
            return None
        groups.setdefault(relay, []).append(source.path)
        sizes[relay] = sizes.get(relay, 0) + size
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


def _unread_bytes(source: files.LogSource, stored: int) -> int:
    size = _file_size(source) or 0
    return max(size - stored % 2**32 if source.compressed else size - stored, 0)


class Writer:
    """Writes batches, on PostgreSQL in a thread of its own while the next batch is parsed.

    At most one batch is in flight: a batch is taken (turned into plain rows) only after
    the previous one committed, so ids remapped by a commit reach the next batch. Inside
    a caller's transaction (tests), or on SQLite (one writer), it writes in this thread.
    """

    def __init__(self, threaded: bool = True):
        self.threaded = threaded

    def __enter__(self) -> Writer:
        self.threaded = (
            self.threaded and connection.vendor == "postgresql" and not connection.in_atomic_block
        )
        self.pool = concurrent.futures.ThreadPoolExecutor(1) if self.threaded else None
        if self.pool is not None:
            self.pool.submit(writer_session).result()  # the thread's own connection
        self.pending: tuple[concurrent.futures.Future, persist.Batch] | None = None
        self.ids = persist.IdPool()
        return self

    def submit(self, correlator, position: Callable[[], None]) -> tuple[int, int]:
        """Commit what the correlator produced since the last call; (events, messages)."""
        self.wait()
        batch = persist.take_batch(correlator, self.ids)
        batch.position = position
        counts = len(batch.events), len(batch.new_messages) + len(batch.changed_messages)
        if self.pool is None:
            persist.apply_remap(batch, persist.write_batch(batch))
        else:
            self.pending = (self.pool.submit(_write_in_thread, batch), batch)
        return counts

    def wait(self) -> None:
        if self.pending is not None:
            future, batch = self.pending
            self.pending = None
            persist.apply_remap(batch, future.result())

    def __exit__(self, *exc) -> None:
        try:
            if exc[0] is None:
                self.wait()
        finally:
            if self.pool is not None:
                self.pool.submit(_close_thread_connection).result()
                self.pool.shutdown()


def _close_thread_connection() -> None:
    connection.close()  # resolved in the writer thread: its own connection


def _write_in_thread(batch: persist.Batch) -> dict[int, int]:
    return persist.write_batch(batch)  # in this thread's own connection


def writer_session() -> None:
    """Set up the database session of a writer thread or worker process (PostgreSQL).

    It holds WRITERS_LOCK (shared) until it is closed at the end of the run: a session
    that may outlive the ingest lock's by a moment (see ingest_lock).
    """
    _fast_commits()
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_lock_shared(%s)", [WRITERS_LOCK])


def _fast_commits() -> None:
    """Don't wait for the WAL flush at each commit (PostgreSQL).

    Safe here: a batch's rows and its file position commit together, so if the server
    crashes and loses the last commits, their lines are simply read again.
    """
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SET synchronous_commit TO off")


def _ingest_file(
    path: str, correlator, tz, writer: Writer, progress, summary: Summary, relay: str | None
) -> None:
    """Read the file on from its stored position; `relay`: refuse lines of any other."""
    if path == "-":
        source = files.LogSource("-", "stdin-" + timezone.now().isoformat(), time.time(), False)
    else:
        source = files.identify(path)
        if source is None:
            return  # no complete first line yet
    logfile, _ = LogFile.objects.get_or_create(
        fingerprint=source.fingerprint, defaults={"path": path}
    )
    size = _file_size(source)
    if size is not None and size != logfile.size:
        LogFile.objects.filter(pk=logfile.pk).update(size=size)
    if source.compressed and size == logfile.position % 2**32:
        _note_path(logfile, path)
        return  # an archive read to its end before it was compressed
    reference = dt.datetime.fromtimestamp(source.mtime, tz)
    parser = LineParser(
        tz, reference=reference, year=logfile.year_anchor, last_month=logfile.last_month
    )
    with files.open_stream(path, source.compressed) as stream:
        batches = files.read_batches(stream, logfile.position, settings.SMTPLOG_INGEST_BATCH_LINES)
        for lines, position in batches:
            records = [rec for rec in map(parser.parse, lines) if rec is not None]
            if relay is not None:
                foreign = next((rec.host for rec in records if rec.host != relay), None)
                if foreign is not None:
                    raise parallel.ForeignRelay(foreign)
            correlator.feed_all(records)
            parsed = len(records)
            last_time = records[-1].time if records else None
            advance = functools.partial(
                _advance,
                logfile.pk,
                path,
                logfile.lines,
                logfile.position,
                position,
                len(lines),
                parser.year,
                parser.last_month,
                last_time,
            )
            events, messages = writer.submit(correlator, advance)
            logfile.position = position
            logfile.lines += len(lines)
            summary.lines += len(lines)
            summary.parsed += parsed
            summary.events += events
            summary.messages += messages
            if progress:
                progress(len(lines))
    summary.skipped.update(parser.stats)


def _advance(
    pk: int,
    path: str,
    lines_before: int,
    old: int,
    new: int,
    lines: int,
    year: int | None,
    last_month: int | None,
    last_time,
) -> None:
    """Move the file's read position, refusing if another writer moved it meanwhile."""
    changes = {
        "position": new,
        "lines": lines_before + lines,
        "path": path,
        "year_anchor": year,
        "last_month": last_month,
        "updated": timezone.now(),
        "last_error": "",
    }
    if last_time is not None:
        changes["last_line_time"] = last_time
    if LogFile.objects.filter(pk=pk, position=old).update(**changes) != 1:
        raise IngestBusy(f"{path}: its position moved under us; another ingester is running")


def _file_size(source: files.LogSource) -> int | None:
    """Bytes there are to read (uncompressed), for the dashboard's lag."""
    if source.path == "-":
        return None
    if source.compressed:
        return files.gzip_size(source.path)
    return os.path.getsize(source.path)


def _note_path(logfile: LogFile, path: str) -> None:
    if logfile.path != path:
        LogFile.objects.filter(pk=logfile.pk).update(path=path)

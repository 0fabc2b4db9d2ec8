"""One ingestion run over a set of log files: the function the command and the task call.

What a run does with what it meets (README, "Ingestion"):

* a line it cannot use is counted by reason in the summary and skipped (the parser);
* a path that is not a log (a directory, JSON, a binary file, a damaged archive) is
  refused by name with the reason, and a compressed file that ends early (still being
  written) is read as far as it goes: notes, not errors;
* a file that cannot be read (permissions, a disk error) is an error: its row's
  `last_error` says so (the dashboard shows it), the later files of the same log wait,
  the other logs go on, and the run ends with the error;
* a failure of the database stops the run (IngestFailed), after writing the error on
  the file's row when the database still takes it. What was committed stays; the next
  run resumes there.
"""

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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from django.conf import settings
from django.db import DatabaseError, connection
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
    """The run stopped on a failure that is not about the data (the database, a worker);
    what was committed before stays, and the next run resumes there."""


class WriteFailed(Exception):
    """Writing a batch of `path` failed (raised from the database error)."""

    def __init__(self, path: str, logfile: int | None):
        super().__init__(path)
        self.path = path
        self.logfile = logfile


class ReadFailed(Exception):
    """The file at `path` could not be read (raised from the OSError)."""

    def __init__(self, path: str, logfile: int | None):
        super().__init__(path)
        self.path = path
        self.logfile = logfile


class Progress(Protocol):
    """What ingest() tells as it goes: how many bytes it is going to read, then each part."""

    def start(self, total: int | None) -> None: ...  # None: not known (standard input)

    def advance(self, done: int) -> None: ...


@dataclass
class Summary:
    files: int = 0
    lines: int = 0
    bytes: int = 0
    parsed: int = 0
    events: int = 0
    messages: int = 0
    skipped: Counter = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)  # files that could not be read
    notes: list[str] = field(default_factory=list)  # files refused, repositioned, cut short
    seconds: float = 0.0

    @property
    def lines_per_second(self) -> float:
        return self.lines / self.seconds if self.seconds else 0.0

    def add(self, other: Summary) -> None:
        for name in ("files", "lines", "bytes", "parsed", "events", "messages", "seconds"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.skipped.update(other.skipped)
        self.errors.extend(other.errors)
        self.notes.extend(other.notes)


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
            with contextlib.suppress(DatabaseError), connection.cursor() as cursor:
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


def ingest(patterns: list[str], progress: Progress | None = None, wait: bool = True) -> Summary:
    """Ingest every complete new line of the files, oldest rotation first."""
    started = time.monotonic()
    summary = Summary()
    tz = zoneinfo.ZoneInfo(settings.TIME_ZONE)
    advance = progress.advance if progress else None
    try:
        with ingest_lock(wait=wait):
            _fast_commits()  # this session holds the ingest lock: no WRITERS_LOCK needed
            every_path = files.expand(patterns)
            sources, unread = _survey(every_path, summary)
            paths = [path for path in every_path if path in sources]
            if progress:
                progress.start(None if "-" in paths else sum(unread.values()))
            groups = _relay_groups(paths, sources, unread, tz)
            if groups:
                try:
                    done, paths = parallel.run(
                        groups,
                        settings.SMTPLOG_INGEST_WORKERS,
                        ingest_relay,
                        writer_session,
                        advance,
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
                    waiting: set[tuple] = set()  # logs whose older file could not be read
                    for path in paths:
                        if files.log_key(path) in waiting:
                            summary.notes.append(f"{path}: waits for an older file of its log")
                        elif not _ingest_path(path, correlator, tz, writer, advance, summary):
                            waiting.add(files.log_key(path))
            summary.files = len(every_path)
    except DatabaseError as exc:
        raise IngestFailed(f"the database failed: {describe(exc)}") from exc
    summary.seconds = time.monotonic() - started
    return summary


def ingest_relay(relay: str, paths: list[str], advance) -> Summary:
    """One relay's files, in order, in this process (an ingest worker)."""
    tz = zoneinfo.ZoneInfo(settings.TIME_ZONE)
    summary = Summary()
    try:
        correlator = persist.load_correlator(tz, settings.SMTPLOG_INTERNAL_NEXT_HOPS, relay)
        with Writer(threaded=False) as writer:
            for path in paths:
                if not _ingest_path(path, correlator, tz, writer, advance, summary, relay):
                    break  # the relay's later files wait for this one
    except parallel.ForeignRelay as exc:
        exc.summary = summary  # what was committed before it
        raise
    except DatabaseError as exc:
        raise IngestFailed(f"the database failed: {describe(exc)}") from exc
    return summary


def _ingest_path(
    path: str, correlator, tz, writer: Writer, advance, summary: Summary, relay: str | None = None
) -> bool:
    """Ingest one file; False when it could not be read (the later files of its log wait).

    Raises IngestFailed when the database fails.
    """
    try:
        _ingest_file(path, correlator, tz, writer, advance, summary, relay)
    except files.NotALog as exc:
        summary.notes.append(f"{path}: not read: {exc}")
    except files.CutShort:
        summary.notes.append(
            f"{path}: the compressed file ends early (still being written?); "
            "read as far as it goes, the rest on a later run"
        )
    except ReadFailed as exc:
        cause = exc.__cause__
        if isinstance(cause, FileNotFoundError):
            summary.notes.append(f"{path}: gone before it could be read (rotated away?)")
            return True
        message = f"{path}: cannot read it: {getattr(cause, 'strerror', None) or cause}"
        summary.errors.append(message)
        _record_error(exc.logfile, path, message)
        return False
    except WriteFailed as exc:
        message = f"{exc.path}: the database failed: {describe(exc.__cause__)}"
        _record_error(exc.logfile, exc.path, message)
        raise IngestFailed(message) from exc.__cause__
    except DatabaseError as exc:
        message = f"{path}: the database failed: {describe(exc)}"
        _record_error(None, path, message)
        raise IngestFailed(message) from exc
    return True


def describe(exc: BaseException | None) -> str:
    """An exception in one line (its first: a database error's details may name senders)."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def _record_error(logfile: int | None, path: str, message: str) -> None:
    """Put the error on the file's row, for the dashboard: best effort (the database may
    be what failed). The row's next committed batch clears it."""
    rows = LogFile.objects.filter(pk=logfile) if logfile else LogFile.objects.filter(path=path)
    try:
        rows.update(last_error=message[:2000])  # (not `updated`: the file did not move on)
    except DatabaseError as exc:
        log.warning("could not record the error of %s: %s", path, describe(exc))


def _survey(paths: list[str], summary: Summary) -> tuple[dict, dict[str, int]]:
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
        source.path: _unread_bytes(source, positions.get(source.fingerprint, 0)) for source in known
    }
    return sources, unread


def _relay_groups(
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


def _unread_bytes(source: files.LogSource, stored: int) -> int:
    size = _file_size(source) or 0
    return max(size - stored % 2**32 if source.compressed else size - stored, 0)


class Writer:
    """Writes batches, on PostgreSQL in a thread of its own while the next batch is parsed.

    At most one batch is in flight: a batch is taken (turned into plain rows) only after
    the previous one committed, so what a commit changed reaches the next batch. Inside
    a caller's transaction (tests), or on SQLite (one writer), it writes in this thread.
    A failed write is raised as WriteFailed, naming the batch's file.
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
        self.pending: tuple[concurrent.futures.Future, persist.Batch, str, int] | None = None
        self.ids = persist.IdPool()
        return self

    def submit(self, correlator, position, path: str, logfile: int | None) -> tuple[int, int]:
        """Commit what the correlator produced since the last call; (events, messages).

        `position` moves the read position of `path` (whose row is `logfile`) in the
        same transaction.
        """
        self.wait()
        batch = persist.take_batch(correlator, self.ids)
        batch.position = position
        counts = len(batch.events), len(batch.new_messages) + len(batch.changed_messages)
        if self.pool is None:
            try:
                moved = persist.write_batch(batch)
            except DatabaseError as exc:
                raise WriteFailed(path, logfile) from exc
            persist.apply_moved(batch, moved)
        else:
            self.pending = (self.pool.submit(_write_in_thread, batch), batch, path, logfile)
        return counts

    def wait(self) -> None:
        """Until the batch in flight is committed."""
        if self.pending is not None:
            future, batch, path, logfile = self.pending
            self.pending = None
            try:
                moved = future.result()
            except DatabaseError as exc:
                raise WriteFailed(path, logfile) from exc
            persist.apply_moved(batch, moved)

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


def _write_in_thread(batch: persist.Batch) -> dict:
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
    path: str, correlator, tz, writer: Writer, advance, summary: Summary, relay: str | None
) -> None:
    """Read the file on from its stored position; `relay`: refuse lines of any other."""
    logfile = None
    try:
        if path == "-":
            source = files.LogSource("-", "stdin-" + timezone.now().isoformat(), time.time(), False)
        else:
            source = files.identify(path)
            if source is None:
                return  # no complete first line yet
        # The batch in flight may be of another copy of this file (the same first line):
        # the row read next must hold its position.
        writer.wait()
        logfile, _ = LogFile.objects.get_or_create(
            fingerprint=source.fingerprint, defaults={"path": path}
        )
        size = _file_size(source)
        start = _start(source, logfile, size, tz, summary)
        if start is None:
            return
        if size is not None and size != logfile.size:
            LogFile.objects.filter(pk=logfile.pk).update(size=size)
        _read(source, logfile, start, correlator, tz, writer, advance, summary, relay)
    except OSError as exc:
        raise ReadFailed(path, logfile.pk if logfile else None) from exc


def _read(
    source: files.LogSource,
    logfile: LogFile,
    start: int,
    correlator,
    tz,
    writer: Writer,
    advance,
    summary: Summary,
    relay: str | None,
) -> None:
    """Read and commit the complete lines from `start` on, batch by batch."""
    path = source.path
    reference = dt.datetime.fromtimestamp(source.mtime, tz)
    parser = LineParser(
        tz, reference=reference, year=logfile.year_anchor, last_month=logfile.last_month
    )
    stored, lines_before, done = logfile.position, logfile.lines, start
    try:
        with files.open_stream(path, source.compressed) as stream:
            batch_lines = settings.SMTPLOG_INGEST_BATCH_LINES
            for lines, position in files.read_batches(stream, start, batch_lines):
                records = [rec for rec in map(parser.parse, lines) if rec is not None]
                if relay is not None:
                    foreign = next((rec.host for rec in records if rec.host != relay), None)
                    if foreign is not None:
                        raise parallel.ForeignRelay(foreign)
                correlator.feed_all(records)
                advance_row = functools.partial(
                    _advance,
                    logfile.pk,
                    path,
                    old=stored,
                    new=position,
                    tail=files.tail_hash(lines[-1] + b"\n"),
                    lines=lines_before + len(lines),
                    year=parser.year,
                    last_month=parser.last_month,
                    last_time=records[-1].time if records else None,
                )
                events, messages = writer.submit(correlator, advance_row, path, logfile.pk)
                stored, lines_before = position, lines_before + len(lines)
                summary.lines += len(lines)
                summary.bytes += position - done
                summary.parsed += len(records)
                summary.events += events
                summary.messages += messages
                if advance:
                    advance(position - done)
                done = position
    finally:
        summary.skipped.update(parser.stats)
    if done != start:
        return  # the last batch moved the position (and cleared any error)
    if start != logfile.position:  # moved back, nothing new after it yet
        writer.wait()
        tail = files.tail_at(path, start)
        _advance(logfile.pk, path, old=logfile.position, new=start, tail=tail)
    elif logfile.last_error:  # read to its end again: whatever failed before is over
        LogFile.objects.filter(pk=logfile.pk).update(last_error="")


def _start(
    source: files.LogSource, logfile: LogFile, size: int | None, tz, summary: Summary
) -> int | None:
    """Where to read the file from (None: nothing in it to read).

    Usually the stored position. A plain file that shrank, or whose bytes before that
    position changed (truncated in place, perhaps written again; a file sharing its first
    line), is read from its first line logged after the last line read before: nothing
    counts twice, what is new is read.
    """
    position = logfile.position
    if source.path == "-" or not position:
        return position
    if source.compressed:
        if size == position % 2**32:
            _note_path(logfile, source.path)
            return None  # an archive read to its end before it was compressed
        return position  # (an older copy ends before the position: nothing is read)
    if size >= position and (
        not logfile.tail or files.tail_at(source.path, position) == logfile.tail
    ):
        return position
    start, newer = _after_last_read(source, logfile, tz)
    if not newer and source.path != logfile.path:
        return None  # an older copy of the file read as logfile.path: nothing new in it
    summary.notes.append(
        f"{source.path}: changed before the read position ({position:,} bytes, the file "
        f"has {size:,}): truncated or rewritten in place; read on from byte {start:,}, "
        "the first line logged after the last line read"
    )
    return start


def _after_last_read(source: files.LogSource, logfile: LogFile, tz) -> tuple[int, bool]:
    """The offset of the file's first line logged after logfile.last_line_time, and True;
    or the end of its last complete line, and False when no line is later."""
    last = logfile.last_line_time
    parser = LineParser(tz, reference=dt.datetime.fromtimestamp(source.mtime, tz))
    offset = 0
    with files.open_stream(source.path, source.compressed) as stream:
        for line in stream:
            if not line.endswith(b"\n"):
                break
            rec = parser.parse(line)
            if rec is not None and (last is None or rec.time > last):
                return offset, True
            offset += len(line)
    return offset, False


def _advance(
    pk: int,
    path: str,
    *,
    old: int,
    new: int,
    tail: str,
    lines: int | None = None,
    year: int | None = None,
    last_month: int | None = None,
    last_time=None,
) -> None:
    """Move the file's read position, refusing if another writer moved it meanwhile."""
    changes = {
        "position": new,
        "tail": tail,
        "path": path,
        "updated": timezone.now(),
        "last_error": "",
    }
    if lines is not None:
        changes.update(lines=lines, year_anchor=year, last_month=last_month)
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

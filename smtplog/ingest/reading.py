"""Reading one log file on from its committed position, batch by batch.

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

import datetime as dt
import functools
import logging
import time

from django.conf import settings
from django.db import DatabaseError
from django.utils import timezone

from smtplog.ingest import files
from smtplog.ingest.errors import (
    ForeignRelay,
    IngestBusy,
    IngestFailed,
    ReadFailed,
    WriteFailed,
    describe,
)
from smtplog.ingest.plan import file_size
from smtplog.ingest.summary import Summary
from smtplog.ingest.writer import Writer
from smtplog.models import LogFile
from smtplog.postfix.parser import LineParser

log = logging.getLogger(__name__)


def ingest_path(
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


def _record_error(logfile: int | None, path: str, message: str) -> None:
    """Put the error on the file's row, for the dashboard: best effort (the database may
    be what failed). The row's next committed batch clears it."""
    rows = LogFile.objects.filter(pk=logfile) if logfile else LogFile.objects.filter(path=path)
    try:
        rows.update(last_error=message[:2000])  # (not `updated`: the file did not move on)
    except DatabaseError as exc:
        log.warning("could not record the error of %s: %s", path, describe(exc))


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
        size = file_size(source)
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
                        raise ForeignRelay(foreign)
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


def _note_path(logfile: LogFile, path: str) -> None:
    if logfile.path != path:
        LogFile.objects.filter(pk=logfile.pk).update(path=path)

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

import contextlib
import datetime as dt
import functools
import logging
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import compress

from django.conf import settings
from django.db import DatabaseError
from django.db.models import F
from django.utils import timezone

from smtplog.ingest import files
from smtplog.ingest.errors import (
    ForeignRelay,
    IngestBusy,
    IngestFailed,
    LeftToOneProcess,
    ReadFailed,
    WriteFailed,
    describe,
)
from smtplog.ingest.feed import Fed, Feeder, rest, take_apart
from smtplog.ingest.summary import Summary
from smtplog.ingest.writer import Writer
from smtplog.models import LogFile, RelayPart
from smtplog.postfix.parser import LineParser, line_host

log = logging.getLogger(__name__)


def ingest_path(
    path: str, correlator, tz, writer: Writer, advance, summary: Summary, share: Share | None = None
) -> bool:
    """Ingest one file; False when it could not be read (the later files of its log wait).

    Raises IngestFailed when the database fails.
    """
    share = share or Share()
    side = share.feeder or share.fed  # (a central log handed out: both hear of each file)
    try:
        with side.file(path) if side else contextlib.nullcontext():
            _ingest_file(path, correlator, tz, writer, advance, summary, share)
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


@dataclass(frozen=True)
class Share:
    """Which lines of a file a reader takes, and whose read position it keeps.

    Share(): every line, in one process; in a central log whose relays were read apart
    (RelayPart rows), each relay's lines from its own position on.
    Share(relay=R): every line, all of relay R (a worker's file of one relay): a line of
    another relay raises ForeignRelay.
    Share(relay=R, part=True): R's lines of a central log, from R's RelayPart; handed
    out by the rest's worker when `fed` is set (smtplog.ingest.feed).
    Share(exclude=X): the lines of every relay not in X, from the file's own position;
    with a `feeder`, this reader hands out the lines of the relays in X.
    """

    relay: str | None = None
    part: bool = False
    exclude: frozenset[str] = frozenset()
    feeder: Feeder | None = field(default=None, compare=False)
    fed: Fed | None = field(default=None, compare=False)

    def keep(self, lines: list[bytes]) -> list[bytes]:
        """The lines of a batch this reader parses (a worker of a central log's relays)."""
        if self.part:
            return list(compress(lines, _of_relay(lines, self.relay)))
        if self.exclude:
            return rest(lines, self._masks(lines))
        return lines

    def share_out(self, lines: list[bytes]) -> tuple[list[bytes], dict[str, list[bytes]]]:
        """The rest's lines of a batch (keep()), and the lines of each relay in `exclude`."""
        return take_apart(lines, self._masks(lines))

    def _masks(self, lines: list[bytes]) -> dict[str, list[bool]]:
        return {relay: _of_relay(lines, relay) for relay in self.exclude}


def _of_relay(lines: list[bytes], relay: str) -> list[bool]:
    """Whether each line is `relay`'s: its host as line_host() tells it.

    A classic timestamp ("Mmm dd hh:mm:ss ") puts the host at byte 16: told there with
    bytes methods, a line costs a third of line_host() (a central log's every line is
    told this way, most of them another relay's).
    """
    host = relay.encode()
    classic = host + b" "
    return [
        line.startswith(classic, 16) or (not line.startswith(b" ", 15) and line_host(line) == host)
        for line in lines
    ]


def _ingest_file(
    path: str, correlator, tz, writer: Writer, advance, summary: Summary, share: Share
) -> None:
    """Read the file on from its stored position (or the share's)."""
    logfile = None
    try:
        if path == "-":
            source = files.LogSource("-", "stdin-" + timezone.now().isoformat(), time.time(), False)
        else:
            source = files.identify(path)
            if source is None:
                return  # no complete first line yet
        logfile, _ = LogFile.objects.get_or_create(
            fingerprint=source.fingerprint, defaults={"path": path}
        )
        size = file_size(source)
        parts = {part.relay: part for part in RelayPart.objects.filter(logfile=logfile)}
        start = _start(source, logfile, size, tz, summary, parts)
        if start is not None and (share.part or share.exclude):
            if start != logfile.position:  # changed under the plan: read it in one process
                raise LeftToOneProcess(f"{path} changed")
            if share.part:
                start = parts[share.relay].position
        elif start is not None and start != logfile.position and parts:
            # rewritten in place (see _start): the relays' positions mean nothing now
            RelayPart.objects.filter(logfile=logfile).delete()
            parts = {}
        if start is None:
            if parts:  # read to its end by every relay (a stopped run could not say so)
                close_parts(logfile.pk)
            return
        if size is not None and size != logfile.size:
            LogFile.objects.filter(pk=logfile.pk).update(size=size)
        reader = _Reader(source, logfile, parts, share, tz)
        reader.read(start, correlator, writer, advance, summary)
    except OSError as exc:
        raise ReadFailed(path, logfile.pk if logfile else None) from exc


class _Reader:
    """Reads one file from a position and commits its lines batch by batch, moving the
    read positions its share keeps (the file's, a relay's part, or every one behind)."""

    def __init__(self, source, logfile: LogFile, parts: dict, share: Share, tz):
        self.source, self.logfile, self.share, self.tz = source, logfile, share, tz
        self.positions = {relay: part.position for relay, part in parts.items()}
        if share.part:
            self.rows = [parts[share.relay]]
        elif share.relay is None and not share.exclude:
            self.rows = [logfile, *parts.values()]  # in one process: every row behind moves
        else:
            self.rows = [logfile]
        # The rows' positions are kept in step with what each batch commits (_advance).
        # In one process, a relay with a part is read from its position, the others from
        # the file's: relay -> position, while any part is behind.
        self.parts = {r: part.position for r, part in parts.items()} if len(self.rows) > 1 else {}

    def read(self, start: int, correlator, writer: Writer, advance, summary: Summary) -> None:
        """Read and commit the complete lines from `start` on, batch by batch."""
        source, logfile, share = self.source, self.logfile, self.share
        path = source.path
        first = min(self.rows, key=lambda row: row.position)  # the parser goes on from its state
        reference = dt.datetime.fromtimestamp(source.mtime, self.tz)
        parser = LineParser(
            self.tz, reference=reference, year=first.year_anchor, last_month=first.last_month
        )
        begin = min(start, *self.parts.values()) if self.parts else start
        done = begin
        try:
            for taken, position, tail in self._batches(begin):
                records = [rec for rec in map(parser.parse, taken) if rec is not None]
                if share.relay is not None and not share.part:
                    foreign = next((r.host for r in records if r.host != share.relay), None)
                    if foreign is not None:
                        raise ForeignRelay(foreign)
                correlator.feed_all(records)
                advance_rows = functools.partial(
                    self._advance,
                    position,
                    tail=tail,
                    lines=len(taken),
                    year=parser.year,
                    last_month=parser.last_month,
                    last_time=records[-1].time if records else None,
                )
                events, messages = writer.submit(correlator, advance_rows, path, logfile.pk)
                summary.lines += len(taken)
                summary.parsed += len(records)
                summary.events += events
                summary.messages += messages
                if not share.part:  # (a central log's bytes count once, with its rest)
                    summary.bytes += position - done
                if advance:
                    advance(position - done)
                done = position
        finally:
            summary.skipped.update(parser.stats)
        if done != begin or share.part:
            return  # the last batch moved the position (and cleared any error)
        if start != logfile.position:  # moved back, nothing new after it yet
            tail = files.tail_at(path, start)
            _advance_file(logfile.pk, path, old=logfile.position, new=start, tail=tail)
        elif logfile.last_error:  # read to its end again: whatever failed before is over
            LogFile.objects.filter(pk=logfile.pk).update(last_error="")

    def _batches(self, begin: int) -> Iterator[tuple[list[bytes], int, str]]:
        """The batches from `begin` on: (the lines this reader parses, the position after
        the batch, the tail hash of its last line), handed out by the feeder or read here."""
        source, share = self.source, self.share
        if share.fed is not None:
            for batch in share.fed.batches(source.path, begin):
                yield batch
                begin = batch[1]
            if share.fed.whole:
                return  # (else the feeder stopped: read on here from the last position)
        feeder = share.feeder
        if feeder is not None and not (
            all(self.positions.get(relay) == begin for relay in share.exclude)
            and feeder.open(source.path, begin)
        ):
            feeder = None  # a relay's part stands elsewhere (a run stopped): each reads
        done = begin
        with files.open_stream(source.path, source.compressed) as stream:
            batch_lines = settings.SMTPLOG_INGEST_BATCH_LINES
            for lines, position in files.read_batches(stream, begin, batch_lines):
                tail = files.tail_hash(lines[-1] + b"\n")
                if self.parts:
                    taken = self._unread(lines, done)
                elif feeder is not None:
                    taken, theirs = share.share_out(lines)
                    feeder.hand_out(theirs, position, tail)
                else:
                    taken = share.keep(lines)
                yield taken, position, tail
                done = position

    def _unread(self, lines: list[bytes], offset: int) -> list[bytes]:
        """The lines not read before, in one process, of a central log whose relays were
        read apart: each relay's from its part's position on, the others' from the file's."""
        parts, rest = self.parts, self.logfile.position
        taken = []
        for line in lines:
            host = line_host(line)
            if offset >= parts.get(host.decode() if host else None, rest):
                taken.append(line)
            offset += len(line) + 1
        return taken

    def _advance(self, new: int, *, tail: str, lines: int, year, last_month, last_time) -> None:
        """Move the rows behind `new` to it (in the batch's transaction)."""
        for row in self.rows:
            old = row.position
            if old >= new:
                continue
            # (in one process, the lines count in the file's row alone)
            added = lines if row is self.logfile or self.share.part else 0
            state = {"lines": row.lines + added, "year": year, "last_month": last_month}
            if row is self.logfile:
                path = self.source.path
                _advance_file(
                    row.pk, path, old=old, new=new, tail=tail, last_time=last_time, **state
                )
            else:
                _advance_part(row, old=old, new=new, last_time=last_time, **state)
            row.position = new
            row.lines += added
        if len(self.rows) > 1:  # in one process: the parts the file's position caught up end
            close_parts(self.logfile.pk)
            rest = self.logfile.position
            self.rows = [r for r in self.rows if r is self.logfile or r.position != rest]
            if len(self.rows) == 1:
                self.parts = {}  # every relay's lines from the file's position on


def close_parts(logfile: int | None = None) -> None:
    """End the relays' parts of central logs (of one file, or of all) that stand where
    the file's own position stands: their lines count in the file's, and the rows go.

    Not a part behind the file's position (its relay's lines from there to the file's
    position are not read yet: the file's position moved on without them), nor one ahead.
    """
    parts = RelayPart.objects.filter(position=F("logfile__position"))
    if logfile is not None:
        parts = parts.filter(logfile=logfile)
    for pk, lines in parts.values_list("logfile", "lines"):
        LogFile.objects.filter(pk=pk).update(lines=F("lines") + lines)
    parts.delete()


def _start(
    source: files.LogSource, logfile: LogFile, size: int | None, tz, summary: Summary, parts: dict
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
        behind = min((part.position for part in parts.values()), default=position)
        if size == min(position, behind) % 2**32:
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


def _advance_file(
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


def _advance_part(
    part: RelayPart, *, old: int, new: int, lines: int, year, last_month, last_time
) -> None:
    """Move a relay's part of a central log, refusing if another writer moved it meanwhile."""
    changes = {"position": new, "lines": lines, "year_anchor": year, "last_month": last_month}
    if last_time is not None:
        changes["last_line_time"] = last_time
    if RelayPart.objects.filter(pk=part.pk, position=old).update(**changes) != 1:
        raise IngestBusy(
            f"{part.relay}'s part of a log file moved under us; another ingester is running"
        )


def _note_path(logfile: LogFile, path: str) -> None:
    if logfile.path != path:
        LogFile.objects.filter(pk=logfile.pk).update(path=path)


def file_size(source: files.LogSource) -> int | None:
    """Bytes there are to read (uncompressed), for the dashboard's lag."""
    if source.path == "-":
        return None
    if source.compressed:
        return files.gzip_size(source.path)
    return os.path.getsize(source.path)

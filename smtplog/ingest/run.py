"""One ingestion run over a set of log files: the function the command and the task call.

The rooms of ingestion: plan.py (which files, which worker), reading.py (one file from
its position), writer.py and persist.py (the commits), locks.py (one ingester at a time),
parallel.py (workers side by side), errors.py and summary.py (what a run tells).
"""

from __future__ import annotations

import time
import zoneinfo

from django.conf import settings
from django.db import DatabaseError

from smtplog.ingest import files, parallel, persist, plan
from smtplog.ingest.errors import ForeignRelay, IngestBusy, IngestFailed, describe
from smtplog.ingest.locks import fast_commits, ingest_lock, writer_session
from smtplog.ingest.reading import ingest_path
from smtplog.ingest.summary import Progress, Summary
from smtplog.ingest.writer import Writer

__all__ = ["IngestBusy", "IngestFailed", "Progress", "Summary", "ingest", "ingest_relay"]


def ingest(patterns: list[str], progress: Progress | None = None, wait: bool = True) -> Summary:
    """Ingest every complete new line of the files, oldest rotation first."""
    started = time.monotonic()
    summary = Summary()
    tz = zoneinfo.ZoneInfo(settings.TIME_ZONE)
    advance = progress.advance if progress else None
    try:
        with ingest_lock(wait=wait):
            fast_commits()  # this session holds the ingest lock: no WRITERS_LOCK needed
            every_path = files.expand(patterns)
            sources, unread = plan.survey(every_path, summary)
            paths = [path for path in every_path if path in sources]
            if progress:
                progress.start(None if "-" in paths else sum(unread.values()))
            groups = plan.relay_groups(paths, sources, unread, tz)
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
                    summary.add(part)
                paths = sorted(paths, key=files.rotation_key)
            if paths:
                correlator = persist.load_correlator(tz, settings.SMTPLOG_INTERNAL_NEXT_HOPS)
                with Writer() as writer:
                    waiting: set[tuple] = set()  # logs whose older file could not be read
                    for path in paths:
                        if files.log_key(path) in waiting:
                            summary.notes.append(f"{path}: waits for an older file of its log")
                        elif not ingest_path(path, correlator, tz, writer, advance, summary):
                            waiting.add(files.log_key(path))
            summary.files = len(every_path)
    except DatabaseError as exc:
        raise IngestFailed(f"the database failed: {describe(exc)}") from exc
    summary.seconds = time.monotonic() - started
    return summary


def ingest_relay(relay: str, paths: list[str], advance) -> tuple[Summary, bool]:
    """One relay's files, in order, in this process (an ingest worker).

    Returns the summary and whether the files were read whole: False when one held a
    line of another relay (what was committed before it stays; the caller reads the
    files on in one process).
    """
    tz = zoneinfo.ZoneInfo(settings.TIME_ZONE)
    summary = Summary()
    try:
        correlator = persist.load_correlator(tz, settings.SMTPLOG_INTERNAL_NEXT_HOPS, relay)
        with Writer(threaded=False) as writer:
            for path in paths:
                if not ingest_path(path, correlator, tz, writer, advance, summary, relay):
                    break  # the relay's later files wait for this one
    except ForeignRelay:
        return summary, False
    except DatabaseError as exc:
        raise IngestFailed(f"the database failed: {describe(exc)}") from exc
    return summary, True

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
from smtplog.ingest.errors import IngestBusy, IngestFailed, LeftToOneProcess, describe
from smtplog.ingest.locks import fast_commits, ingest_lock, writer_session
from smtplog.ingest.memory import fewer_collections
from smtplog.ingest.reading import close_parts, ingest_path
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
        with ingest_lock(wait=wait), fewer_collections():
            fast_commits()  # this session holds the ingest lock: no WRITERS_LOCK needed
            every_path = files.expand(patterns)
            sources, unread = plan.survey(every_path, summary)
            paths = [path for path in every_path if path in sources]
            groups = plan.relay_groups(paths, sources, unread, tz)
            if progress:  # (a central log read side by side is read once by each worker)
                reads = [p for group in groups for p in group.paths] if groups else paths
                progress.start(None if "-" in paths else sum(unread[p] for p in reads))
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
                finally:
                    if groups[0].channels is not None:  # (one run's, shared by its groups)
                        groups[0].channels.close()  # this process's ends left
                for part in done:
                    summary.add(part)
                close_parts()  # central logs whose relays all read to where the file's is
                paths = sorted(paths, key=files.rotation_key)
            if paths:
                correlator = persist.load_correlator(tz, settings.SMTPLOG_INTERNAL_NEXT_HOPS)
                writer = Writer()
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


def ingest_relay(group: plan.Group, advance) -> tuple[Summary, bool]:
    """One worker's group of files, in order, in this process (an ingest worker).

    Returns the summary and whether the files were read whole: False when the plan
    changed under it (a file held a line of another relay, a central log changed); what
    was committed before stays, and the caller reads the files on in one process.
    """
    tz = zoneinfo.ZoneInfo(settings.TIME_ZONE)
    summary = Summary()
    hops = settings.SMTPLOG_INTERNAL_NEXT_HOPS
    group.keep_channels()
    try:
        if group.rest:
            correlator = persist.load_correlator(tz, hops, exclude=group.rest)
        else:
            correlator = persist.load_correlator(tz, hops, group.relay)
        writer = Writer()
        for path, share in group.reads:
            if not ingest_path(path, correlator, tz, writer, advance, summary, share):
                break  # the group's later files wait for this one
    except LeftToOneProcess:
        return summary, False
    except DatabaseError as exc:
        raise IngestFailed(f"the database failed: {describe(exc)}") from exc
    finally:
        group.close_channels()
    return summary, True

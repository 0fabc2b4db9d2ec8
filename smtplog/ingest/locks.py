"""One ingester at a time, and the database sessions of its writers."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
from pathlib import Path

from django.conf import settings
from django.db import DatabaseError, connection

from smtplog.ingest.errors import IngestBusy

_LOCK = int.from_bytes(hashlib.sha256(b"smtplog-ingest").digest()[:8], "big", signed=True)
# Held (shared) by the sessions that write batches beside the one holding the ingest lock
# (the forked workers'), until they close: a new run first waits for the sessions of a
# killed run's writers to end (their last commit may be in flight).
WRITERS_LOCK = int.from_bytes(
    hashlib.sha256(b"smtplog-ingest-writers").digest()[:8], "big", signed=True
)


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


def writer_session() -> None:
    """Set up the database session of a forked worker process (PostgreSQL).

    It holds WRITERS_LOCK (shared) until it is closed at the end of the run: a session
    that may outlive the ingest lock's by a moment (see ingest_lock).
    """
    fast_commits()
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_lock_shared(%s)", [WRITERS_LOCK])


def fast_commits() -> None:
    """Don't wait for the WAL flush at each commit (PostgreSQL).

    Safe here: a batch's rows and its file position commit together, so if the server
    crashes and loses the last commits, their lines are simply read again.
    """
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SET synchronous_commit TO off")

"""The writer of batches: on PostgreSQL, a thread committing while the next batch is read."""

from __future__ import annotations

import concurrent.futures

from django.db import DatabaseError, connection

from smtplog.ingest import persist
from smtplog.ingest.errors import WriteFailed
from smtplog.ingest.locks import writer_session


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

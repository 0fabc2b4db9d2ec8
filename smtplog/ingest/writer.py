"""The writer of batches: each batch committed before the next one is read.

A thread committing while the next batch was parsed was measured again on 2026-12-04
(bench/ingest.py's month, per-relay files, three interleaved runs each): in the largest
relay's process, or in both workers', beside the database server on two cores, it cost
0.4-1.1 s more CPU and made the run 0.1-0.5 s slower. Batches are written in the
ingesting thread.
"""

from __future__ import annotations

from django.db import DatabaseError

from smtplog.ingest import persist
from smtplog.ingest.errors import WriteFailed


class Writer:
    """Writes the correlator's output batch by batch, in this thread and connection.

    A batch is taken (turned into plain rows) and committed in one call, so what a
    commit changed reaches the next batch. A failed write is raised as WriteFailed,
    naming the batch's file.
    """

    def __init__(self):
        self.ids = persist.IdPool()

    def submit(self, correlator, position, path: str, logfile: int | None) -> tuple[int, int]:
        """Commit what the correlator produced since the last call; (events, messages).

        `position` moves the read position of `path` (whose row is `logfile`) in the
        same transaction.
        """
        batch = persist.take_batch(correlator, self.ids)
        batch.position = position
        try:
            persist.write_batch(batch)
        except DatabaseError as exc:
            raise WriteFailed(path, logfile) from exc
        return len(batch.events), len(batch.new_messages) + len(batch.changed_messages)

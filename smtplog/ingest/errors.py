"""What can stop or interrupt an ingestion run, and how an error is told in one line."""

from __future__ import annotations


class IngestBusy(Exception):
    """Another ingester holds the lock."""


class IngestFailed(Exception):
    """The run stopped on a failure that is not about the data (the database, a worker);
    what was committed before stays, and the next run resumes there."""


class LeftToOneProcess(Exception):  # noqa: N818 (not an error: a change of plan)
    """What an ingest worker was given to read is read on in one process instead (what it
    committed before stays)."""


class ForeignRelay(LeftToOneProcess):
    """A file read for one relay (by an ingest worker) holds lines of another."""

    def __init__(self, host: str):
        super().__init__(host)
        self.host = host


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


def describe(exc: BaseException | None) -> str:
    """An exception in one line (its first: a database error's details may name senders)."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__

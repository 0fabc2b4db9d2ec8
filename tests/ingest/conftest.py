from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import pytest

from smtplog.ingest.run import ingest
from smtplog.models import DailyCounter, Event


@pytest.fixture
def logdir(tmp_path: Path) -> Path:
    d = tmp_path / "log"
    d.mkdir()
    return d


def write_log(path: Path, text: str, mtime: dt.datetime | None = None, mode: str = "w") -> Path:
    """Write log lines (dedented, one per line) and date the file like syslog would."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    with open(path, mode) as f:
        f.write("\n".join(lines) + "\n")
    if mtime is not None:
        os.utime(path, (mtime.timestamp(), mtime.timestamp()))
    return path


def run(*paths: Path | str):
    return ingest([str(p) for p in paths])


def counts(sender: str | None = None) -> dict:
    """{(sender, day-iso, column): n} of the daily counters, zeros left out."""
    result = {}
    rows = DailyCounter.objects.all()
    if sender:
        rows = rows.filter(sender=sender)
    for row in rows:
        for col in ("auth_blk", "auth_rcv", "bounced", "deferred", "expired", "sent"):
            if getattr(row, col):
                result[(row.sender, row.day.isoformat(), col)] = getattr(row, col)
    return result


def event_rows() -> list[tuple]:
    return sorted(
        Event.objects.values_list(
            "sender", "day", "status", "relay", "queue_id", "recipient", "client_ip", "response"
        )
    )


_MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]


def central_log(out: Path, dest: Path, files: int = 3) -> Path:
    """The per-relay logs of a generated sample (`out/<host>/mail.log*`) as a log host
    keeps them: one central file of every relay's lines in time order, rotated into
    `files` files (mail.log.N.gz ... mail.log), dated like syslog would. Classic
    timestamps of one year (the sample must not cross New Year)."""
    import gzip
    import heapq

    from smtplog.ingest.files import expand

    def stream(relay: Path):
        for path in expand([str(relay / "mail.log*")]):
            opener = gzip.open if path.endswith(".gz") else open
            with opener(path, "rb") as f:
                yield from f

    def when(line: bytes) -> tuple:
        return (_MONTHS.index(line[:3].decode()), int(line[4:6]), line[7:15])

    relays = sorted(p for p in out.iterdir() if p.is_dir())
    lines = list(heapq.merge(*(stream(r) for r in relays), key=when))
    dest.mkdir(parents=True, exist_ok=True)
    size = -(-len(lines) // files)
    mtime = max(p.stat().st_mtime for r in relays for p in r.iterdir())
    for n, start in enumerate(range(0, len(lines), size)):
        number = files - 1 - n
        name = "mail.log" if number == 0 else f"mail.log.{number}" + (".gz" if number > 1 else "")
        opener = gzip.open if name.endswith(".gz") else open
        with opener(dest / name, "wb") as f:
            f.writelines(lines[start : start + size])
        os.utime(dest / name, (mtime, mtime))
    return dest

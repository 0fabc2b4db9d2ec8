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


def central_month(tmp_path: Path, days: int, messages_per_day: int, seed: int) -> tuple[Path, Path]:
    """A generated month (ending 2026-11-27) of three relays of uneven traffic (55/30/15)
    in one log host's central log: the sample's directory, and the log's."""
    from smtplog.sample import generate

    out = tmp_path / "maillog"
    generate(
        out,
        days=days,
        end=dt.date(2026, 11, 27),
        relays=3,
        messages_per_day=messages_per_day,
        seed=seed,
        layout="central",
        relay_weights=(55, 30, 15),
    )
    return out, out / "loghost"

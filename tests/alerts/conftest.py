"""Fixtures of the alert and dashboard tests: heavy senders, the catalogue."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from pathlib import Path

import pytest
from django.utils.translation import trans_real

from smtplog.models import DailyCounter, Event, Status
from smtplog.store import add_events
from tests.conftest import TZ, make_event

YESTERDAY = dt.date(2026, 11, 19)  # the day the nightly pass at NOW alerts
REPO = Path(__file__).resolve().parents[2]
CATALOGUE = REPO / "alerts/locale/zh_Hant/LC_MESSAGES/django.po"


@pytest.fixture(scope="session", autouse=True)
def alerts_catalogue() -> None:
    """Compile the app's zh_Hant catalogue when its .mo is missing or older (*.mo are not kept)."""
    compiled = CATALOGUE.with_suffix(".mo")
    if compiled.exists() and compiled.stat().st_mtime >= CATALOGUE.stat().st_mtime:
        return
    # scripts/test compiles every catalogue first; this is for a bare `pytest tests/alerts`.
    subprocess.run(
        [sys.executable, str(REPO / "scripts/compile_po.py"), str(REPO)],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    trans_real._translations = {}  # forget catalogues loaded before the .mo existed


def counter(sender: str, day: dt.date = YESTERDAY, **counts: int) -> DailyCounter:
    return DailyCounter.objects.create(sender=sender, day=day, **counts)


def heavy_day(
    sender: str,
    day: dt.date = YESTERDAY,
    sent: int = 0,
    bounced: int = 0,
    client_ip: str = "140.114.63.228",
    sasl_username: str = "",
) -> list[Event]:
    """`sent` and `bounced` events of one sender on one local day, counters in step."""
    noon = dt.datetime.combine(day, dt.time(12), tzinfo=TZ)
    events = [
        make_event(
            sender,
            Status.SENT,
            noon + dt.timedelta(seconds=i),
            client_ip=client_ip,
            sasl_username=sasl_username,
            recipient=f"user{i}@example.com",
            next_hop="mx.example.com[192.0.2.25]:25",
            dsn="2.0.0",
            response="250 Ok",
        )
        for i in range(sent)
    ] + [
        make_event(
            sender,
            Status.BOUNCED,
            noon + dt.timedelta(seconds=i),
            client_ip=client_ip,
            sasl_username=sasl_username,
            recipient=f"nobody{i}@example.org",
            next_hop="mx.example.org[192.0.2.26]:25",
            dsn="5.1.1",
            response=f"550 5.1.1 <nobody{i}@example.org>: Recipient address rejected: User unknown",
        )
        for i in range(bounced)
    ]
    return add_events(events)

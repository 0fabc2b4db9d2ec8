"""The shared world of the tests: clients on and off campus, a few mail events, mail checks."""

from __future__ import annotations

import datetime as dt
import zoneinfo

import pytest
import time_machine
from django.core import mail
from django.test import Client

from smtplog.models import Event, Message, Status
from smtplog.store import add_events

TZ = zoneinfo.ZoneInfo("Asia/Taipei")
# A fixed "now" for tests that freeze time: 2026-11-20 10:00 Taipei.
NOW = dt.datetime(2026, 11, 20, 10, 0, tzinfo=TZ)
CAMPUS_IP = "140.114.63.228"
OUTSIDE_IP = "203.0.113.9"


@pytest.fixture
def frozen():
    """The clock stopped at NOW; the test may move it (`frozen.shift(...)`)."""
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


@pytest.fixture
def campus_client() -> Client:
    return Client(REMOTE_ADDR=CAMPUS_IP)


@pytest.fixture
def outside_client() -> Client:
    return Client(REMOTE_ADDR=OUTSIDE_IP)


def make_event(sender: str, status: str, time: dt.datetime, **fields) -> Event:
    fields.setdefault("relay", "smtp1")
    fields.setdefault("queue_id", "4AA091855DA0")
    return Event(sender=sender, status=status, time=time, day=time.astimezone(TZ).date(), **fields)


@pytest.fixture
def mail_events(db) -> list[Event]:
    """alice sent to two recipients (one bounced), was deferred once, and bob sent one."""
    t = NOW - dt.timedelta(days=1)
    message = Message.objects.create(
        relay="smtp1",
        queue_id="4AA091855DA0",
        first_seen=t,
        sender="alice@cs.nthu.edu.tw",
        client_ip=CAMPUS_IP,
    )
    events = [
        make_event(
            "alice@cs.nthu.edu.tw",
            Status.AUTH_RCV,
            t,
            message=message,
            client_ip=CAMPUS_IP,
            sasl_username="alice",
        ),
        make_event(
            "alice@cs.nthu.edu.tw",
            Status.SENT,
            t + dt.timedelta(seconds=2),
            message=message,
            client_ip=CAMPUS_IP,
            recipient="carol@example.com",
            next_hop="mx.example.com[192.0.2.25]:25",
            dsn="2.0.0",
            response="250 2.0.0 Ok: queued as 12345",
        ),
        make_event(
            "alice@cs.nthu.edu.tw",
            Status.DEFERRED,
            t + dt.timedelta(seconds=2),
            message=message,
            client_ip=CAMPUS_IP,
            recipient="dave@example.org",
            next_hop="mx.example.org[192.0.2.26]:25",
            dsn="4.2.2",
            response="452 4.2.2 Mailbox full",
        ),
        make_event(
            "alice@cs.nthu.edu.tw",
            Status.BOUNCED,
            t + dt.timedelta(hours=1),
            message=message,
            client_ip=CAMPUS_IP,
            recipient="dave@example.org",
            next_hop="mx.example.org[192.0.2.26]:25",
            dsn="5.1.1",
            response="550 5.1.1 User unknown",
        ),
        make_event(
            "bob@ee.nthu.edu.tw",
            Status.SENT,
            t,
            queue_id="5BB1",
            client_ip=CAMPUS_IP,
            recipient="erin@example.net",
            dsn="2.0.0",
            response="250 ok",
        ),
    ]
    return add_events(events)


@pytest.fixture
def assert_email_contains():
    """Check a fragment is in both the text and the HTML part of the one mail sent."""

    def check(fragment: str, index: int = 0) -> None:
        message = mail.outbox[index]
        assert fragment in message.body, f"{fragment!r} not in the text part"
        html = next(body for body, mimetype in message.alternatives if mimetype == "text/html")
        assert fragment in html, f"{fragment!r} not in the HTML part"

    return check


@pytest.fixture
def redis_program(transactional_db) -> str:
    """The redis-server program, for a test that starts its own broker beside processes
    (gunicorn, Celery workers) that open the test database themselves."""
    from tests.services import require_postgres, require_program
    from tests.worker import other_sessions, wait_until

    require_postgres()
    yield require_program("redis-server")
    # Their sessions end a moment after the processes: let them, so the test database
    # can be flushed and dropped.
    wait_until(lambda: not other_sessions(), timeout=20, what="other sessions to close")

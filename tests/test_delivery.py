"""Sending mail: the deadline on a whole SMTP conversation, and what a failure may say."""

from __future__ import annotations

import datetime as dt
import smtplib

import pytest
from django.core.mail import EmailMessage, get_connection
from django.utils import timezone

from queries import sending
from queries.models import Query
from smtplog import delivery
from smtplog.mail import SendDeadlineExceeded
from tests.queries.processes import drip_smtp

CANARY = "canary.7f3a@cs.nthu.edu.tw"


def message(connection=None) -> EmailMessage:
    return EmailMessage("s", "b", "smtp-log-query@nthu.edu.tw", [CANARY], connection=connection)


@pytest.mark.parametrize("drip_at", ["banner", "data"])
def test_a_server_dripping_bytes_is_cut_off_at_the_deadline(drip_at, tmp_path):
    # Every byte comes within EMAIL_TIMEOUT (30 s); only the deadline ends the send.
    with drip_smtp(tmp_path, drip_at=drip_at) as port:
        backend = get_connection(
            "smtplog.mail.SMTPBackend", host="127.0.0.1", port=port, timeout=30, deadline=1.5
        )
        with pytest.raises(SendDeadlineExceeded):
            backend.send_messages([message()])
    assert backend.connection is None  # closed, nothing left open


def test_a_send_past_the_deadline_is_a_transient_failure(tmp_path):
    with drip_smtp(tmp_path) as port:
        backend = get_connection(
            "smtplog.mail.SMTPBackend", host="127.0.0.1", port=port, deadline=1
        )
        with pytest.raises(delivery.TransientSendError, match="^SendDeadlineExceeded"):
            delivery.send(message(backend))


@pytest.mark.django_db
def test_a_report_past_the_deadline_is_held_for_its_retry(settings, tmp_path):
    query = Query.objects.create(
        address=CANARY,
        begin=timezone.localdate() - dt.timedelta(days=3),
        end=timezone.localdate(),
        language="en",
        created=timezone.now(),
    )
    with drip_smtp(tmp_path) as port:
        settings.EMAIL_BACKEND = "smtplog.mail.SMTPBackend"
        settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_SEND_DEADLINE = (
            "127.0.0.1",
            port,
            1,
        )
        with pytest.raises(delivery.RetryLater):
            sending.send_query_report(query.id)
    query.refresh_from_db()
    assert query.outcome == Query.Outcome.PENDING and query.attempts == 1
    assert query.error.startswith("SendDeadlineExceeded")
    assert query.claimed_until > timezone.now() - dt.timedelta(seconds=1)


def test_a_fast_server_is_not_cut_off(tmp_path):
    from tests.queries.processes import saved_mail, smtp_sink

    with smtp_sink(tmp_path) as port:
        backend = get_connection(
            "smtplog.mail.SMTPBackend", host="127.0.0.1", port=port, deadline=5
        )
        assert backend.send_messages([message(), message()]) == 2
    assert len(saved_mail(tmp_path)) == 2


@pytest.mark.parametrize(
    ("error", "described", "transient"),
    [
        (
            smtplib.SMTPRecipientsRefused(
                {CANARY: (450, f"4.2.1 <{CANARY}>: Recipient address rejected".encode())}
            ),
            "SMTPRecipientsRefused: 450 4.2.1",
            True,
        ),
        (
            smtplib.SMTPRecipientsRefused({CANARY: (550, f"5.1.1 <{CANARY}>: unknown".encode())}),
            "SMTPRecipientsRefused: 550 5.1.1",
            False,
        ),
        (
            smtplib.SMTPDataError(451, f"4.3.0 {CANARY} try later".encode()),
            "SMTPDataError: 451 4.3.0",
            True,
        ),
        (smtplib.SMTPDataError(554, b"5.7.1 rejected"), "SMTPDataError: 554 5.7.1", False),
        (smtplib.SMTPDataError(554, b"no enhanced code"), "SMTPDataError: 554", False),
        (
            smtplib.SMTPSenderRefused(553, b"5.7.1 no", "smtp-log-query@nthu.edu.tw"),
            "SMTPSenderRefused: 553 5.7.1",
            False,
        ),
        (
            smtplib.SMTPServerDisconnected("Connection unexpectedly closed"),
            "SMTPServerDisconnected: Connection unexpectedly closed",
            True,
        ),
        (
            ConnectionRefusedError(111, "Connection refused"),
            "ConnectionRefusedError: Connection refused",
            True,
        ),
        (TimeoutError("timed out"), "TimeoutError: timed out", True),
        (
            smtplib.SMTPException(f"odd reply naming {CANARY}"),
            "SMTPException: odd reply naming <address>",
            True,  # no code: not known to be final
        ),
    ],
)
def test_a_failure_is_described_by_kind_and_codes_never_by_address(error, described, transient):
    assert delivery.describe(error) == described
    assert delivery.is_transient(error) is transient

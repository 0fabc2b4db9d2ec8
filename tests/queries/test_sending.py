"""Sending a query's report: once, retried when transient, recorded; the sweeper."""

from __future__ import annotations

import datetime as dt
import smtplib
import socket
from unittest import mock

import pytest
from captcha.models import CaptchaStore
from celery.exceptions import Retry
from django.core import mail
from django.utils import timezone

from queries import sending
from queries.models import Query
from queries.tasks import cleanup_captchas, send_report, sweep_pending_queries
from tests.conftest import NOW
from tests.queries.backends import fail_next

pytestmark = pytest.mark.django_db


def make_query(**fields) -> Query:
    fields.setdefault("address", "alice@cs.nthu.edu.tw")
    fields.setdefault("begin", NOW.date() - dt.timedelta(days=30))
    fields.setdefault("end", NOW.date())
    fields.setdefault("language", "en")
    fields.setdefault("created", timezone.now())
    fields.setdefault("client_ip", "140.114.63.228")
    return Query.objects.create(**fields)


def test_it_sends_once_and_records_it(mail_events, frozen):
    query = make_query()
    assert sending.send_query_report(query.id) == "sent"
    assert sending.send_query_report(query.id).startswith("skipped")
    query.refresh_from_db()
    assert (query.outcome, query.sent_at, query.attempts, query.claimed_until) == (
        Query.Outcome.SENT,
        NOW,
        1,
        None,
    )
    assert len(mail.outbox) == 1 and mail.outbox[0].to == ["alice@cs.nthu.edu.tw"]


def test_a_claimed_query_is_not_sent_by_another_worker(frozen):
    query = make_query()
    assert sending.claim(query.id, timezone.now())
    assert sending.send_query_report(query.id).startswith("skipped")
    assert not mail.outbox


def test_a_lease_of_a_dead_worker_runs_out(frozen):
    query = make_query()
    assert sending.claim(query.id, timezone.now())
    frozen.shift(sending.LEASE + dt.timedelta(seconds=1))
    assert sending.send_query_report(query.id) == "sent"


@pytest.mark.parametrize(
    "error",
    [
        smtplib.SMTPDataError(451, b"4.3.0 Try again later"),
        smtplib.SMTPRecipientsRefused({"alice@cs.nthu.edu.tw": (450, b"4.2.1 busy")}),
        smtplib.SMTPServerDisconnected("Connection unexpectedly closed"),
        smtplib.SMTPConnectError(421, b"4.3.2 shutting down"),
        ConnectionRefusedError(111, "Connection refused"),
        TimeoutError("timed out"),
        socket.gaierror(-3, "Temporary failure in name resolution"),
    ],
)
def test_transient_failures_are_retried(error, settings, frozen):
    fail_next(settings, error)
    query = make_query()
    with pytest.raises(sending.TransientSendError):
        sending.send_query_report(query.id)
    query.refresh_from_db()
    assert query.outcome == Query.Outcome.PENDING and query.attempts == 1
    assert query.error and "alice" not in query.error.split(":")[0]
    assert sending.send_query_report(query.id) == "sent"  # released: the retry can claim it
    assert len(mail.outbox) == 1


@pytest.mark.parametrize(
    "error",
    [
        smtplib.SMTPRecipientsRefused({"alice@cs.nthu.edu.tw": (550, b"5.1.1 unknown")}),
        smtplib.SMTPDataError(554, b"5.7.1 rejected"),
        smtplib.SMTPSenderRefused(553, b"5.7.1 not allowed", "smtp-log-query@nthu.edu.tw"),
    ],
)
def test_permanent_failures_are_not_retried(error, settings, frozen):
    fail_next(settings, error)
    query = make_query()
    assert sending.send_query_report(query.id) == "failed"
    query.refresh_from_db()
    assert query.outcome == Query.Outcome.FAILED and query.attempts == 1
    assert str(error.smtp_code if hasattr(error, "smtp_code") else 550) in query.error


def test_the_last_try_records_a_failure_instead_of_raising(settings, frozen):
    fail_next(settings, TimeoutError("timed out"))
    query = make_query()
    assert sending.send_query_report(query.id, final=True) == "failed"
    assert Query.objects.get().outcome == Query.Outcome.FAILED


def test_the_task_retries_451_then_delivers_once(settings, mail_events, frozen):
    fail_next(settings, smtplib.SMTPDataError(451, b"4.3.0 Try again later"))
    query = make_query()
    with pytest.raises(Retry):  # eager: celery raises the retry it would have scheduled
        send_report.delay(query.id)
    assert Query.objects.get().outcome == Query.Outcome.PENDING
    send_report.delay(query.id)  # the retry (a worker runs it itself: tests/queries/test_e2e)
    query.refresh_from_db()
    assert query.outcome == Query.Outcome.SENT and query.attempts == 2
    assert len(mail.outbox) == 1


def test_the_task_does_not_retry_a_5xx(settings, frozen):
    fail_next(
        settings, smtplib.SMTPDataError(550, b"5.7.1 no"), smtplib.SMTPDataError(550, b"5.7.1 no")
    )
    query = make_query()
    send_report.delay(query.id)
    query.refresh_from_db()
    assert query.outcome == Query.Outcome.FAILED and query.attempts == 1


def test_the_task_is_declared_to_retry_only_transient_errors():
    assert send_report.autoretry_for == (sending.TransientSendError,)
    assert send_report.max_retries == 8 and send_report.retry_backoff


def test_the_sweeper_re_enqueues_lost_queries_once(frozen):
    lost = make_query(created=timezone.now() - dt.timedelta(minutes=10))
    young = make_query(created=timezone.now() - dt.timedelta(minutes=1))  # its task may come
    make_query(created=timezone.now() - dt.timedelta(minutes=10), outcome="sent")
    make_query(created=timezone.now() - dt.timedelta(minutes=10), outcome="limited")
    retrying = make_query(
        created=timezone.now() - dt.timedelta(minutes=10),
        attempts=1,
        claimed_until=timezone.now() - dt.timedelta(minutes=2),
    )
    enqueue = mock.Mock()
    assert sending.sweep(enqueue) == "1 re-enqueued, 0 given up"
    enqueue.assert_called_once_with(lost.id)
    assert sending.sweep(enqueue) == "0 re-enqueued, 0 given up"  # claimed: not twice
    frozen.shift(sending.STALE_AFTER + dt.timedelta(minutes=1))
    sending.sweep(enqueue)  # still pending long after: the first re-enqueue was lost too
    assert [c.args[0] for c in enqueue.call_args_list] == [lost.id, lost.id, young.id, retrying.id]


def test_the_sweeper_unclaims_when_the_broker_is_still_down(frozen):
    from kombu.exceptions import OperationalError

    lost = make_query(created=timezone.now() - dt.timedelta(minutes=10))
    with pytest.raises(OperationalError):
        sending.sweep(mock.Mock(side_effect=OperationalError("down")))
    assert Query.objects.get(id=lost.id).swept_at is None
    enqueue = mock.Mock()
    sending.sweep(enqueue)
    enqueue.assert_called_once_with(lost.id)


def test_the_sweeper_task_sends_a_lost_report(mail_events, frozen):
    make_query(created=timezone.now() - dt.timedelta(minutes=10))
    assert sweep_pending_queries() == "1 re-enqueued, 0 given up"
    assert Query.objects.get().outcome == Query.Outcome.SENT
    assert len(mail.outbox) == 1
    assert sweep_pending_queries() == "0 re-enqueued, 0 given up"
    assert len(mail.outbox) == 1


def test_the_sweeper_gives_up_after_a_day(frozen):
    make_query(created=timezone.now() - dt.timedelta(hours=25))
    assert sweep_pending_queries() == "0 re-enqueued, 1 given up"
    assert Query.objects.get().outcome == Query.Outcome.FAILED


def test_cleanup_captchas_removes_expired_challenges(frozen):
    CaptchaStore.generate_key()
    frozen.shift(dt.timedelta(hours=1))
    CaptchaStore.generate_key()
    assert cleanup_captchas() == "1 expired captchas removed"
    assert CaptchaStore.objects.count() == 1


def test_logs_and_task_arguments_carry_ids_not_addresses(
    mail_events, frozen, caplog, campus_client, form_data, django_capture_on_commit_callbacks
):
    with (
        mock.patch("queries.views.send_report.delay_on_commit") as enqueue,
        caplog.at_level("DEBUG"),
    ):
        campus_client.post("/", form_data())
        query = Query.objects.get()
        sending.send_query_report(query.id)
    assert enqueue.call_args.args == (query.id,) and not enqueue.call_args.kwargs
    assert "alice" not in caplog.text
    assert f"query {query.id}" in caplog.text

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
from smtplog import delivery
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
    frozen.shift(delivery.CLAIM_LEASE + dt.timedelta(seconds=1))
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
    with pytest.raises(delivery.RetryLater) as later:
        sending.send_query_report(query.id)
    query.refresh_from_db()
    assert query.outcome == Query.Outcome.PENDING and query.attempts == 1
    assert query.error.startswith(type(error).__name__) and "alice" not in query.error
    # Held until the retry is due: nothing sends it before, the retry can claim it then.
    assert query.claimed_until == NOW + dt.timedelta(seconds=later.value.countdown)
    assert 0 <= later.value.countdown <= settings.SMTPLOG_SEND_RETRY_BACKOFF
    frozen.shift(dt.timedelta(seconds=later.value.countdown))
    assert sending.send_query_report(query.id) == "sent"
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


def test_after_the_last_retry_the_query_rests_pending_for_the_sweeper(settings, frozen):
    fail_next(settings, TimeoutError("timed out"))
    query = make_query(created=timezone.now())
    assert sending.send_query_report(query.id, retries=delivery.MAX_RETRIES) == "retries used up"
    query.refresh_from_db()
    assert (query.outcome, query.error) == (Query.Outcome.PENDING, "TimeoutError: timed out")
    assert query.claimed_until == NOW + sending.REST_AFTER_RETRIES
    enqueue = mock.Mock()
    frozen.shift(sending.REST_AFTER_RETRIES)
    sending.sweep(enqueue)
    enqueue.assert_not_called()
    frozen.shift(sending.PICKUP)
    sending.sweep(enqueue)
    enqueue.assert_called_once_with(query.id)


def test_the_retry_countdown_backs_off_with_full_jitter(settings):
    settings.SMTPLOG_SEND_RETRY_BACKOFF = 30
    for retries, window in [(0, 30), (1, 60), (2, 120), (5, 900), (7, 900)]:
        countdowns = {delivery.retry_countdown(retries) for _ in range(300)}
        assert min(countdowns) >= 0 and max(countdowns) <= window
        assert len(countdowns) > 10  # spread over the window, not one fixed delay
    assert delivery.retry_countdown(delivery.MAX_RETRIES) is None


def test_the_task_retries_451_then_delivers_once(settings, mail_events, frozen):
    fail_next(settings, smtplib.SMTPDataError(451, b"4.3.0 Try again later"))
    query = make_query()
    with pytest.raises(Retry):  # eager: celery raises the retry it would have scheduled
        send_report.delay(query.id)
    assert Query.objects.get().outcome == Query.Outcome.PENDING
    # Eagerly, celery ran the retry at once: too early, the query is held until it is due.
    frozen.shift(dt.timedelta(seconds=settings.SMTPLOG_SEND_RETRY_BACKOFF))
    send_report.delay(query.id)  # the retry when due (a worker: tests/queries/test_e2e)
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


def test_reports_and_alerts_share_one_retry_policy_and_lease():
    from alerts.tasks import send_alert

    for task in (send_report, send_alert):
        assert task.max_retries == delivery.MAX_RETRIES
        assert (task.soft_time_limit, task.time_limit) == (
            delivery.SOFT_TIME_LIMIT,
            delivery.TIME_LIMIT,
        )
    assert delivery.CLAIM_LEASE.total_seconds() > delivery.TIME_LIMIT


def test_a_killed_workers_report_is_swept_within_five_minutes_with_the_defaults():
    # Lease, then PICKUP of nothing happening, then the next every-minute sweep.
    from django.conf import settings

    sweep_every = settings.CELERY_BEAT_SCHEDULE["sweep-pending-queries"]["schedule"]
    assert delivery.CLAIM_LEASE + sending.PICKUP + sweep_every <= dt.timedelta(minutes=5)


def test_the_sweeper_re_enqueues_lost_queries_once(frozen):
    now = timezone.now()
    lost = make_query(created=now - dt.timedelta(minutes=10))
    young = make_query(created=now - sending.PICKUP / 2)  # its task may still come
    make_query(created=now - dt.timedelta(minutes=10), outcome="sent")
    make_query(created=now - dt.timedelta(minutes=10), outcome="limited")
    killed = make_query(  # a worker took it, and its lease is over
        created=now - dt.timedelta(minutes=10), attempts=1, claimed_until=now - sending.PICKUP
    )
    working = make_query(  # a worker holds it
        created=now - dt.timedelta(minutes=10), attempts=1, claimed_until=now
    )
    enqueue = mock.Mock()
    assert sending.sweep(enqueue) == "2 re-enqueued, 0 given up"
    assert [c.args[0] for c in enqueue.call_args_list] == [lost.id, killed.id]
    assert sending.sweep(enqueue) == "0 re-enqueued, 0 given up"  # claimed: not twice
    frozen.shift(sending.PICKUP)
    assert sending.sweep(enqueue) == "2 re-enqueued, 0 given up"  # young, working
    # A swept task taken by a worker that died too: found again once its lease is over.
    Query.objects.filter(id=killed.id).update(claimed_until=timezone.now(), attempts=2)
    frozen.shift(sending.PICKUP)
    assert sending.sweep(enqueue) == "1 re-enqueued, 0 given up"
    # A swept task nobody took (no worker running): enqueued again only much later.
    frozen.shift(sending.RESWEEP_AFTER + dt.timedelta(seconds=1))
    sending.sweep(enqueue)
    assert [c.args[0] for c in enqueue.call_args_list] == [
        lost.id,
        killed.id,
        young.id,
        working.id,
        killed.id,
        lost.id,
        young.id,
        killed.id,
        working.id,
    ]


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
        mock.patch("queries.views.enqueue_report") as enqueue,
        caplog.at_level("DEBUG"),
    ):
        with django_capture_on_commit_callbacks(execute=True):
            campus_client.post("/", form_data())
        query = Query.objects.get()
        sending.send_query_report(query.id)
    assert enqueue.call_args.args == (query.id,) and not enqueue.call_args.kwargs
    assert "alice" not in caplog.text
    assert f"query {query.id}" in caplog.text

"""Sending a query's report exactly once, and finding queries whose task was lost.

A worker claims the query with a conditional UPDATE (a lease on a pending row) before
building and sending, so a redelivered task, a retry and a sweeper's re-enqueue can
never send the same report twice. Logs name queries by id, never by address.
"""

from __future__ import annotations

import datetime as dt
import logging
import smtplib
from collections.abc import Callable

from django.conf import settings
from django.db.models import F, Q
from django.utils import timezone

from queries.models import Query
from queries.report import build_report, report_message

log = logging.getLogger(__name__)

# How long a claim holds: longer than a task may run, so a live worker is never overtaken.
LEASE = dt.timedelta(seconds=settings.CELERY_TASK_TIME_LIMIT + 60)
SWEEP_AFTER = dt.timedelta(minutes=3)  # a query still pending and never tried by then was lost
STALE_AFTER = dt.timedelta(minutes=30)  # tried but not finished by then: its task was lost too
GIVE_UP_AFTER = dt.timedelta(hours=24)


class TransientSendError(Exception):
    """The SMTP server or the network failed in a way worth retrying."""


def is_transient(exc: Exception) -> bool:
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        return all(code < 500 for code, _msg in exc.recipients.values())
    if isinstance(exc, smtplib.SMTPResponseException):
        return exc.smtp_code < 500
    return isinstance(exc, smtplib.SMTPServerDisconnected | OSError)


def claim(query_id: int, now: dt.datetime) -> bool:
    return bool(
        Query.objects.claimable(now)
        .filter(id=query_id)
        .update(claimed_until=now + LEASE, attempts=F("attempts") + 1)
    )


def send_query_report(query_id: int, final: bool = False) -> str:
    """Build and send the report of one pending query; record the outcome.

    Raises TransientSendError when a retry may succeed, unless this is the final try.
    """
    if not claim(query_id, timezone.now()):
        return "skipped: not pending or claimed by another worker"
    query = Query.objects.get(id=query_id)
    report = build_report(
        query.address,
        query.begin,
        query.end,
        client_ip=query.client_ip or "",
        language=query.language,
    )
    try:
        report_message(report).send()
    except (smtplib.SMTPException, OSError) as exc:
        error = f"{type(exc).__name__}: {exc}"[:2000]
        if is_transient(exc) and not final:
            # Released, not cleared: claimed_until now says when it was last tried.
            Query.objects.filter(id=query_id).update(claimed_until=timezone.now(), error=error)
            log.warning("query %s: transient send failure, will retry: %s", query_id, error)
            raise TransientSendError(error) from exc
        _finish(query_id, Query.Outcome.FAILED, error=error)
        log.error("query %s: report not sent: %s", query_id, error)
        return "failed"
    _finish(query_id, Query.Outcome.SENT, sent_at=timezone.now(), error="")
    log.info("query %s: report sent (%s rows)", query_id, len(report.rows))
    return "sent"


def _finish(query_id: int, outcome: str, **fields) -> None:
    Query.objects.filter(id=query_id).update(outcome=outcome, claimed_until=None, **fields)


def lost_queries(now: dt.datetime, min_age: dt.timedelta = SWEEP_AFTER) -> list[int]:
    """Pending queries whose task never ran (broker down at submit) or died unfinished."""
    return list(
        Query.objects.claimable(now)
        .filter(created__lte=now - min_age, created__gt=now - GIVE_UP_AFTER)
        .filter(Q(attempts=0) | Q(claimed_until__lt=now - STALE_AFTER))
        .filter(Q(swept_at__isnull=True) | Q(swept_at__lt=now - STALE_AFTER))
        .order_by("id")
        .values_list("id", flat=True)[:1000]
    )


def claim_for_sweep(query_id: int, now: dt.datetime) -> bool:
    """The sweeper's own claim: one re-enqueue per query per STALE_AFTER, whatever runs it."""
    return bool(
        Query.objects.filter(id=query_id, outcome=Query.Outcome.PENDING)
        .filter(Q(swept_at__isnull=True) | Q(swept_at__lt=now - STALE_AFTER))
        .update(swept_at=now)
    )


def sweep(
    enqueue: Callable[[int], object],
    now: dt.datetime | None = None,
    min_age: dt.timedelta = SWEEP_AFTER,
) -> str:
    """Re-enqueue lost queries, each claimed first; give up on those a day old."""
    now = now or timezone.now()
    given_up = give_up_old(now)
    enqueued = 0
    for query_id in lost_queries(now, min_age):
        if not claim_for_sweep(query_id, now):
            continue
        try:
            enqueue(query_id)
        except Exception:
            # The broker is still down: unclaim, so the next sweep tries again.
            Query.objects.filter(id=query_id, swept_at=now).update(swept_at=None)
            raise
        enqueued += 1
        log.info("query %s: re-enqueued by the sweeper", query_id)
    return f"{enqueued} re-enqueued, {given_up} given up"


def give_up_old(now: dt.datetime) -> int:
    return Query.objects.filter(
        outcome=Query.Outcome.PENDING, created__lte=now - GIVE_UP_AFTER
    ).update(outcome=Query.Outcome.FAILED, error="not sent within 24 hours", claimed_until=None)

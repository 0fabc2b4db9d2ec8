"""Sending a query's report exactly once, and finding queries whose task was lost.

A worker claims the query with a conditional UPDATE before building and sending: it
holds the row until `claimed_until`, which is the end of its lease while it works and,
after a transient failure, the time of the next try. A redelivered task, a retry that
comes early and a sweeper's re-enqueue therefore never send the same report twice.
Retry policy and lease: smtplog.delivery. Logs name queries by id, never by address.

Lost queries (a worker killed holding one, a retry that died with its worker, a broker
down at submit time) are found by the sweeper, which runs every minute: a pending query
whose hold ended PICKUP ago with nothing happening is re-enqueued. With the default
send time limit, a killed worker's report goes out about four minutes after the kill
at most, as soon as any worker runs.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable

from django.db.models import F, Q
from django.utils import timezone

from queries.models import Query
from queries.report import build_report, report_message
from smtplog import delivery

log = logging.getLogger(__name__)

# A due retry or a re-enqueued task is picked up within seconds while a worker runs;
# nothing done for this long after the hold ended means its task died with a worker.
PICKUP = delivery.CLAIM_LEASE / 2
# A query swept whose task was never taken (no worker running) is enqueued again only
# after this: the queue holds it meanwhile.
RESWEEP_AFTER = dt.timedelta(minutes=30)
# After the last retry, the sweeper takes the query up again after this rest.
REST_AFTER_RETRIES = dt.timedelta(minutes=30)
GIVE_UP_AFTER = dt.timedelta(hours=24)


def claim(query_id: int, now: dt.datetime) -> bool:
    return bool(
        Query.objects.claimable(now)
        .filter(id=query_id)
        .update(claimed_until=now + delivery.CLAIM_LEASE, attempts=F("attempts") + 1)
    )


def send_query_report(query_id: int, retries: int = 0) -> str:
    """Build and send the report of one pending query; record the outcome.

    Raises delivery.RetryLater after a transient failure while retries are left; once
    they are used up the query rests, still pending, until the sweeper takes it again.
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
        delivery.send(report_message(report))
    except delivery.TransientSendError as exc:
        return _later(query_id, retries, str(exc))
    except delivery.PermanentSendError as exc:
        _finish(query_id, Query.Outcome.FAILED, error=str(exc))
        log.error("query %s: report refused: %s", query_id, exc)
        return "failed"
    _finish(query_id, Query.Outcome.SENT, sent_at=timezone.now(), error="")
    log.info("query %s: report sent (%s rows)", query_id, len(report.rows))
    return "sent"


def _later(query_id: int, retries: int, error: str) -> str:
    """Hold the query until its next try: a retry of the task, or the sweeper after a rest."""
    countdown = delivery.retry_countdown(retries)
    rest = dt.timedelta(seconds=countdown) if countdown is not None else REST_AFTER_RETRIES
    Query.objects.filter(id=query_id).update(claimed_until=timezone.now() + rest, error=error)
    if countdown is None:
        log.warning("query %s: %s; retries used up, the sweeper tries again later", query_id, error)
        return "retries used up"
    log.warning("query %s: transient send failure, retry in %s s: %s", query_id, countdown, error)
    raise delivery.RetryLater(countdown, error)


def _finish(query_id: int, outcome: str, **fields) -> None:
    Query.objects.filter(id=query_id).update(outcome=outcome, claimed_until=None, **fields)


def lost_queries(now: dt.datetime, pickup: dt.timedelta = PICKUP) -> list[int]:
    """Pending queries whose task never ran (broker down at submit) or died unfinished."""
    return list(
        Query.objects.claimable(now - pickup)
        .filter(created__lte=now - pickup, created__gt=now - GIVE_UP_AFTER)
        .filter(_not_swept_since_tried(now))
        .order_by("id")
        .values_list("id", flat=True)[:1000]
    )


def _not_swept_since_tried(now: dt.datetime) -> Q:
    """Never swept; or tried since the last sweep (that task died too); or swept long ago."""
    return (
        Q(swept_at__isnull=True)
        | Q(swept_at__lt=F("claimed_until"))
        | Q(swept_at__lt=now - RESWEEP_AFTER)
    )


def claim_for_sweep(query_id: int, now: dt.datetime, pickup: dt.timedelta = PICKUP) -> bool:
    """The sweeper's own claim: one re-enqueue per lost task, whatever runs the sweeper."""
    return bool(
        Query.objects.claimable(now - pickup)
        .filter(_not_swept_since_tried(now), id=query_id)
        .update(swept_at=now)
    )


def sweep(
    enqueue: Callable[[int], object],
    now: dt.datetime | None = None,
    pickup: dt.timedelta = PICKUP,
) -> str:
    """Re-enqueue lost queries, each claimed first; give up on those a day old."""
    now = now or timezone.now()
    given_up = give_up_old(now)
    enqueued = 0
    for query_id in lost_queries(now, pickup):
        if not claim_for_sweep(query_id, now, pickup):
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

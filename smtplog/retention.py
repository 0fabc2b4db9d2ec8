"""The retention window: what the store keeps, what queries may ask for, what is purged.

Retention is the whole store's rule: every kind of row (events, messages, counters,
queries, alerts, the trace audit, login aliases, captchas) leaves through purge() here,
nightly.
Rows go in batches of at most BATCH_SIZE per transaction, so ingestion, which writes
the same tables, never waits long for a lock. The cutoff is a moment (now minus
SMTPLOG_RETENTION_DAYS): an event 30 days 23 hours old stays, one 31 days 1 hour old
goes. Counters are per local day, so the day the cutoff falls in loses its old events
through smtplog.store.delete_events (which takes them off its counters) while older
days, whose every event goes, simply lose their counter rows.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from captcha.models import CaptchaStore
from django.conf import settings
from django.db import transaction
from django.db.models import QuerySet
from django.db.models.functions import Coalesce
from django.utils import timezone

from alerts.models import Alert
from queries.models import Query
from smtplog import store
from smtplog.models import DailyCounter, Event, LoginAlias, Message
from tracing.models import Look

BATCH_SIZE = 10_000


def cutoff(now: dt.datetime | None = None) -> dt.datetime:
    """Rows older than this moment are out of the retention window."""
    return (now or timezone.now()) - dt.timedelta(days=settings.SMTPLOG_RETENTION_DAYS)


def retention_window(today: dt.date | None = None) -> tuple[dt.date, dt.date]:
    """The first and last local day a query may ask about."""
    today = today or timezone.localdate()
    return today - dt.timedelta(days=settings.SMTPLOG_RETENTION_DAYS - 1), today


def _plain_delete(queryset: QuerySet) -> int:
    deleted, _ = queryset.delete()
    return deleted


def delete_in_batches(
    queryset: QuerySet,
    batch_size: int = BATCH_SIZE,
    delete: Callable[[QuerySet], int] = _plain_delete,
) -> int:
    """Delete the rows of `queryset`, at most `batch_size` primary keys per transaction."""
    model = queryset.model
    total = 0
    while True:
        with transaction.atomic():
            ids = list(queryset.order_by().values_list("pk", flat=True)[:batch_size])
            if not ids:
                return total
            delete(model.objects.filter(pk__in=ids))
            total += len(ids)


def expired(now: dt.datetime | None = None) -> dict[str, QuerySet]:
    """What the purge deletes, by kind, in the order it deletes it."""
    now = now or timezone.now()
    moment = cutoff(now)
    cutoff_day = timezone.localdate(moment)
    return {
        # Whole days before the cutoff day: their counters go with them below.
        "events of whole days": Event.objects.filter(day__lt=cutoff_day),
        # The cutoff day's older part: counters decremented in the same transaction.
        "events of the cutoff day": Event.objects.filter(day=cutoff_day, time__lt=moment),
        "daily counters": DailyCounter.objects.filter(day__lt=cutoff_day),
        # A message's events all happen by its removal, so none still kept loses its link.
        "messages": Message.objects.alias(last=Coalesce("removed_at", "first_seen")).filter(
            last__lt=moment
        ),
        # By `created`, which is after the day alerted: a purged alert's day is always
        # outside the catch-up window, so purging it can never cause a second mail.
        "alerts": Alert.objects.filter(created__lt=moment),
        "queries": Query.objects.filter(created__lt=moment),
        # Who looked at whose records is kept as long as the records themselves.
        "trace audit": Look.objects.filter(time__lt=moment),
        "login aliases": LoginAlias.objects.filter(last_seen__lt=moment),
        "captchas": CaptchaStore.objects.filter(expiration__lte=now),
    }


def purge(
    now: dt.datetime | None = None, batch_size: int = BATCH_SIZE, dry_run: bool = False
) -> dict[str, int]:
    """Delete what is out of the window; returns how many rows of each kind (would) go."""
    result = {}
    for kind, queryset in expired(now).items():
        if dry_run:
            result[kind] = queryset.count()
        elif kind == "events of the cutoff day":
            result[kind] = delete_in_batches(queryset, batch_size, store.delete_events)
        else:
            result[kind] = delete_in_batches(queryset, batch_size)
    return result

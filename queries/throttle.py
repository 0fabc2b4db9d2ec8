"""Bounding cheap requests per client network, counted in the database (fixed windows).

Counted where the query limits are (the database, not a cache), so every web process
sees the same counts, and they hold while Redis is down.
"""

from __future__ import annotations

import datetime as dt

from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from queries.models import ClientHits


def allow(key: str, limit: int, window: dt.timedelta, now: dt.datetime | None = None) -> bool:
    """Count one request under `key`; False once `limit` were counted in this window."""
    now = now or timezone.now()
    seconds = int(window.total_seconds())
    start = dt.datetime.fromtimestamp(int(now.timestamp()) // seconds * seconds, tz=dt.UTC)
    rows = ClientHits.objects.filter(key=key, window=start)
    for _ in range(2):  # a concurrent first request of the window may insert the row first
        if rows.filter(hits__lt=limit).update(hits=F("hits") + 1):
            return True
        if rows.exists():
            return False
        try:
            with transaction.atomic():
                ClientHits.objects.create(key=key, window=start, hits=1)
        except IntegrityError:
            continue
        return True
    return False


def forget_before(moment: dt.datetime) -> int:
    """Remove the counts of windows that started before `moment`."""
    removed, _ = ClientHits.objects.filter(window__lt=moment).delete()
    return removed

"""Bounding cheap requests per client network, counted in the database (fixed windows).

Counted where the query limits are (the database, not a cache), so every web process
sees the same counts, and they hold while Redis is down.
"""

from __future__ import annotations

import datetime as dt

from django.db import connection
from django.utils import timezone

from queries.models import ClientHits


def allow(key: str, limit: int, window: dt.timedelta, now: dt.datetime | None = None) -> bool:
    """Count one request under `key`; False once `limit` were counted in this window.

    One statement, whether the window's row exists yet or not (an update, a check and an
    insert in a transaction were five round trips for a client's first request)."""
    now = now or timezone.now()
    seconds = int(window.total_seconds())
    start = dt.datetime.fromtimestamp(int(now.timestamp()) // seconds * seconds, tz=dt.UTC)
    table = connection.ops.quote_name(ClientHits._meta.db_table)
    key_column, window_column = map(connection.ops.quote_name, ("key", "window"))
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} ({key_column}, {window_column}, hits) VALUES (%s, %s, 1) "
            f"ON CONFLICT ({key_column}, {window_column}) "
            f"DO UPDATE SET hits = {table}.hits + 1 WHERE {table}.hits < %s RETURNING hits",
            [key, connection.ops.adapt_datetimefield_value(start), limit],
        )
        return cursor.fetchone() is not None


def forget_before(moment: dt.datetime) -> int:
    """Remove the counts of windows that started before `moment`."""
    removed, _ = ClientHits.objects.filter(window__lt=moment).delete()
    return removed

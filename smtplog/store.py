"""Writes to the event store that keep DailyCounter in step with Event.

Each function that changes events changes their counters in the same transaction, so
both commit (or roll back) together: it joins the caller's transaction when called inside
one (ingestion commits a whole batch with its file position), and opens its own
otherwise. apply_delta changes counters only, in one statement.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from django.db import connection, transaction
from django.db.models import Count

from smtplog.models import COUNTER_FIELDS, NULL_SENDER, DailyCounter, Event

# (sender, day, status) -> how many events
Delta = Counter


def counter_delta(events: Iterable[Event]) -> Delta:
    delta: Delta = Counter()
    for event in events:
        if event.sender and event.sender != NULL_SENDER:
            delta[(event.sender, event.day, event.status)] += 1
    return delta


def apply_delta(delta: Delta) -> None:
    """Add (or with negative numbers, subtract) to the daily counters: one upsert per sender-day."""
    rows: dict[tuple, dict[str, int]] = {}
    for (sender, day, status), n in delta.items():
        if n:
            rows.setdefault((sender, day), dict.fromkeys(COUNTER_FIELDS, 0))[status] += n
    if not rows:
        return
    table = DailyCounter._meta.db_table
    columns = ", ".join(COUNTER_FIELDS)
    updates = ", ".join(f"{c} = {table}.{c} + excluded.{c}" for c in COUNTER_FIELDS)
    params = [
        (sender, day, *(counts[c] for c in COUNTER_FIELDS))
        for (sender, day), counts in sorted(rows.items())  # sorted: a stable lock order
    ]
    conflict = f"ON CONFLICT (sender, day) DO UPDATE SET {updates}"
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":  # one statement: the rows as arrays, in order
            arrays = ", ".join(
                ["%s::varchar[]", "%s::date[]"] + ["%s::integer[]"] * len(COUNTER_FIELDS)
            )
            cursor.execute(
                f"INSERT INTO {table} (sender, day, {columns}) "
                f"SELECT sender, day, {columns} FROM unnest({arrays}) "
                f"WITH ORDINALITY AS r(sender, day, {columns}, n) "
                f"ORDER BY n {conflict}",
                [list(column) for column in zip(*params, strict=True)],
            )
        else:
            placeholders = ", ".join(["%s"] * (2 + len(COUNTER_FIELDS)))
            cursor.executemany(
                f"INSERT INTO {table} (sender, day, {columns}) VALUES ({placeholders}) {conflict}",
                params,
            )


def add_events(events: list[Event], batch_size: int = 5000) -> list[Event]:
    """Insert events and count the attributed ones."""
    with transaction.atomic(savepoint=False):
        created = Event.objects.bulk_create(events, batch_size=batch_size)
        apply_delta(counter_delta(events))
    return created


def delete_events(queryset) -> int:
    """Delete events and take them off the counters."""
    with transaction.atomic(savepoint=False):
        rows = (
            queryset.counted()
            .values_list("sender", "day", "status")
            .annotate(n=Count("id"))
            .order_by()
        )
        delta: Delta = Counter({(s, d, st): -n for s, d, st, n in rows})
        deleted, _ = queryset.delete()
        apply_delta(delta)
    return deleted


def attribute_events(queryset, sender: str, delta: Delta | None = None) -> int:
    """Give unattributed events their sender, now that it is known, and count them.

    With `delta`, the counter increments are added to it for the caller to apply (once,
    in sorted order, so that concurrent ingesters lock counter rows in one order).
    """
    with transaction.atomic(savepoint=False):
        pending = list(queryset.filter(sender="").values_list("id", "day", "status"))
        if not pending:
            return 0
        Event.objects.filter(id__in=[p[0] for p in pending]).update(sender=sender)
        counts = Counter((sender, day, status) for _, day, status in pending)
        if delta is None:
            apply_delta(counts)
        else:
            delta.update(counts)
    return len(pending)


def recount(day=None) -> Delta:
    """The counters as a recount of events would give them (all days, or one)."""
    events = Event.objects.counted()
    if day is not None:
        events = events.filter(day=day)
    rows = events.values_list("sender", "day", "status").annotate(n=Count("id")).order_by()
    return Counter({(s, d, st): n for s, d, st, n in rows})


def stored_counts(day=None) -> Delta:
    counters = DailyCounter.objects.all() if day is None else DailyCounter.objects.filter(day=day)
    result: Delta = Counter()
    for row in counters.values("sender", "day", *COUNTER_FIELDS):
        for field in COUNTER_FIELDS:
            if row[field]:
                result[(row["sender"], row["day"], field)] = row[field]
    return result


def rebuild_counters(day) -> int:
    """Replace one day's counters by a recount of its events; returns the rows written."""
    with transaction.atomic(savepoint=False):
        DailyCounter.objects.filter(day=day).delete()
        delta = recount(day)
        apply_delta(delta)
    return len({(sender, d) for sender, d, _ in delta})

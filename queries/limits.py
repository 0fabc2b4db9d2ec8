"""Recording a query and the abuse limits, counted from the recorded queries themselves.

The limits live in the database, not in a cache, so they hold while Redis is down. On
PostgreSQL a transaction-scoped advisory lock per address and per client network makes
"count, then insert" atomic, so parallel submits cannot slip past a limit together.
"""

from __future__ import annotations

import datetime as dt
import zlib

from django.conf import settings
from django.db import connection
from django.db.models import Count, Q
from django.utils import timezone

from queries.models import Query

ADDRESS_WINDOW = dt.timedelta(hours=24)
NET_WINDOW = dt.timedelta(hours=1)


def _lock(*keys: str) -> None:
    if connection.vendor != "postgresql":
        return  # SQLite serializes writers; it is the laptop default, not a deployment
    ids = [zlib.crc32(key.encode()) - 2**31 for key in sorted(keys)]  # a stable lock order
    with connection.cursor() as cursor:
        cursor.execute("SELECT " + ", ".join(["pg_advisory_xact_lock(21365, %s)"] * len(ids)),
                       ids)


def over_limit(address: str, net: str, now: dt.datetime) -> bool:
    """Both limits in one query (the 24 h window holds the hour's)."""
    since = now - NET_WINDOW
    counts = (
        Query.objects.counted().asked_since(now - ADDRESS_WINDOW)
        .filter(Q(address=address) | Q(client_net=net, created__gte=since))
        .aggregate(address=Count("id", filter=Q(address=address)),
                   net=Count("id", filter=Q(client_net=net, created__gte=since)))
    )
    return (counts["address"] >= settings.SMTPLOG_LIMIT_PER_ADDRESS
            or counts["net"] >= settings.SMTPLOG_LIMIT_PER_IP)


def record_query(*, address: str, begin: dt.date, end: dt.date, client_ip: str, net: str,
                 language: str, token: str = "") -> Query:
    """Record a form query: pending, or limited when a limit is reached.

    Runs in the caller's transaction. A form page's token is unique: submitting the same
    page twice at once makes the second insert fail with IntegrityError, which rolls the
    caller's transaction back; the caller then answers with the first query
    (first_query_of()).
    """
    now = timezone.now()
    _lock(f"address:{address}", f"net:{net}")
    outcome = Query.Outcome.LIMITED if over_limit(address, net, now) else Query.Outcome.PENDING
    return Query.objects.create(
        address=address, begin=begin, end=end, client_ip=client_ip, client_net=net,
        language=language, created=now, outcome=outcome, form_token=token or None,
    )


def first_query_of(token: str, net: str) -> Query | None:
    """The query a form page (its token) already made from this client network."""
    if not token:
        return None
    return Query.objects.filter(form_token=token, client_net=net).first()

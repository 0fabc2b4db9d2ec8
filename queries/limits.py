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
    """Both limits in one query (the 24 h window holds the hour's).

    Plain SQL, as the ORM would write it: this runs on every submit, and compiling the
    ORM's aggregate cost several times the query itself.
    """
    table = Query._meta.db_table
    adapt = connection.ops.adapt_datetimefield_value
    day_ago, hour_ago = adapt(now - ADDRESS_WINDOW), adapt(now - NET_WINDOW)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT COUNT(CASE WHEN address = %s THEN 1 END), "
            "COUNT(CASE WHEN client_net = %s AND created >= %s THEN 1 END) "
            f"FROM {table} WHERE by_staff = %s AND outcome <> %s AND created >= %s "
            "AND (address = %s OR (client_net = %s AND created >= %s))",
            [address, net, hour_ago, False, Query.Outcome.LIMITED, day_ago, address, net,
             hour_ago])
        by_address, by_net = cursor.fetchone()
    return (by_address >= settings.SMTPLOG_LIMIT_PER_ADDRESS
            or by_net >= settings.SMTPLOG_LIMIT_PER_IP)


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
    query = Query(address=address, begin=begin, end=end, client_ip=client_ip, client_net=net,
                  language=language, created=now, outcome=outcome, form_token=token or None)
    _insert(query)
    return query


def _insert(query: Query) -> None:
    """query.save() for a new row, without the ORM's per-call compiling (every submit runs it).

    Every concrete field is written, its value prepared by the field itself, as save() does.
    """
    meta = query._meta
    fields = [f for f in meta.concrete_fields if not f.primary_key]
    columns = ", ".join(connection.ops.quote_name(f.column) for f in fields)
    sql = f"INSERT INTO {meta.db_table} ({columns}) VALUES ({', '.join(['%s'] * len(fields))})"
    returning = connection.features.can_return_columns_from_insert
    if returning:
        sql += f" RETURNING {connection.ops.quote_name(meta.pk.column)}"
    with connection.cursor() as cursor:
        cursor.execute(sql, [f.get_db_prep_save(f.pre_save(query, True), connection)
                             for f in fields])
        query.pk = cursor.fetchone()[0] if returning else cursor.lastrowid
    query._state.adding = False
    query._state.db = connection.alias


def first_query_of(token: str, net: str) -> Query | None:
    """The query a form page (its token) already made from this client network."""
    if not token:
        return None
    # Nearly every submit is its page's first: an indexed look-up by the unique token in
    # plain SQL, and the ORM reads the row only when there is one.
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT id FROM {Query._meta.db_table} WHERE form_token = %s "
                       "AND client_net = %s", [token, net])
        row = cursor.fetchone()
    return Query.objects.filter(pk=row[0]).first() if row else None

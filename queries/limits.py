"""Recording a query and the abuse limits, counted from the recorded queries themselves.

The limits live in the database, not in a cache, so they hold while Redis is down. On
PostgreSQL a transaction-scoped advisory lock per mailbox and per client network makes
"count, then insert" atomic, so parallel submits cannot slip past a limit together; the
locks and the insert are sent together, one round trip per recorded query.
"""

from __future__ import annotations

import datetime as dt
import zlib

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from queries.models import Query

ADDRESS_WINDOW = dt.timedelta(hours=24)
NET_WINDOW = dt.timedelta(hours=1)


def mailbox_of(address: str) -> str:
    """What the per-address limit counts: the address without its +tag.

    name+1@… and name+2@… reach the same mailbox; each would otherwise get its own
    allowance of reports. The report still goes to the address as typed.
    """
    local, _at, domain = address.rpartition("@")
    return f"{local.split('+', 1)[0] or local}@{domain}"


def _lock_statement(*keys: str) -> tuple[str, list[int]]:
    """The transaction-scoped advisory locks of the keys, in a stable order."""
    ids = [zlib.crc32(key.encode()) - 2**31 for key in sorted(keys)]
    return "SELECT " + ", ".join(["pg_advisory_xact_lock(21365, %s)"] * len(ids)), ids


def record_query(
    *,
    address: str,
    begin: dt.date,
    end: dt.date,
    client_ip: str,
    net: str,
    language: str,
    token: str = "",
) -> Query:
    """Record a form query, pending or limited when a limit is reached, in one round trip.

    On PostgreSQL the advisory locks of the address and the client network and the
    counting insert (_counted_insert) reach the server as one string of two statements:
    a transaction of their own when the connection is in autocommit mode (the locks are
    held until the insert commits), else part of the caller's transaction. Each statement
    takes its own snapshot, so the count sees every query recorded by whoever held a lock
    before. SQLite serializes writers; it is the laptop default, not a deployment.

    A form page's token is unique: submitting the same page twice at once makes the
    second insert fail with IntegrityError, and nothing of it is kept (inside a caller's
    transaction, the caller rolls back, to a savepoint at least); the caller then answers
    with the first query (first_query_of()).
    """
    query = Query(
        address=address,
        mailbox=mailbox_of(address),
        begin=begin,
        end=end,
        client_ip=client_ip,
        client_net=net,
        language=language,
        created=timezone.now(),
        outcome=Query.Outcome.PENDING,
        form_token=token or None,
    )
    insert, params = _counted_insert(query)
    with connection.cursor() as cursor:
        if connection.vendor != "postgresql":
            cursor.execute(insert, params)
        else:
            lock, ids = _lock_statement(f"mailbox:{query.mailbox}", f"net:{net}")
            if connection.features.uses_server_side_binding:  # one statement per execute
                with transaction.atomic():
                    cursor.execute(lock, ids)
                    cursor.execute(insert, params)
            else:
                cursor.execute(f"{lock}; {insert}", ids + params)
                cursor.nextset()  # past the locks' row, to the inserted one
        query.pk, query.outcome = cursor.fetchone()
    return query


def _counted_insert(query: Query) -> tuple[str, list]:
    """The INSERT of the query that counts the limits and sets its outcome, and its params.

    Plain SQL, as query.save() and the ORM's aggregate would write it, without compiling
    them on every submit. Both limits are counted by one scan (the 24 h window holds the
    hour's). Every concrete field is written, its value prepared by the field itself, as
    save() does; the outcome is chosen by the counts, and returned with the new id.
    """
    meta = query._meta
    fields = [f for f in meta.concrete_fields if not f.primary_key]
    quote = connection.ops.quote_name
    adapt = connection.ops.adapt_datetimefield_value
    values, params = [], []
    for f in fields:
        if f.name == "outcome":
            values.append(
                "CASE WHEN counts.by_address >= %s OR counts.by_net >= %s THEN %s ELSE %s END"
            )
            params += [
                settings.SMTPLOG_LIMIT_PER_ADDRESS,
                settings.SMTPLOG_LIMIT_PER_IP,
                Query.Outcome.LIMITED,
                Query.Outcome.PENDING,
            ]
        else:
            values.append("%s")
            params.append(f.get_db_prep_save(f.pre_save(query, True), connection))
    day_ago, hour_ago = adapt(query.created - ADDRESS_WINDOW), adapt(query.created - NET_WINDOW)
    mailbox, net = query.mailbox, query.client_net
    sql = (
        f"INSERT INTO {meta.db_table} ({', '.join(quote(f.column) for f in fields)}) "
        f"SELECT {', '.join(values)} FROM ("
        "SELECT COUNT(CASE WHEN mailbox = %s THEN 1 END) AS by_address, "
        "COUNT(CASE WHEN client_net = %s AND created >= %s THEN 1 END) AS by_net "
        f"FROM {meta.db_table} WHERE by_staff = %s AND outcome <> %s AND created >= %s "
        "AND (mailbox = %s OR (client_net = %s AND created >= %s))) AS counts "
        f"RETURNING {quote(meta.pk.column)}, {quote(meta.get_field('outcome').column)}"
    )
    params += [
        mailbox,
        net,
        hour_ago,
        False,
        Query.Outcome.LIMITED,
        day_ago,
        mailbox,
        net,
        hour_ago,
    ]
    return sql, params


def first_query_of(token: str, net: str | None = None) -> Query | None:
    """The query a form page (its token) already made; with `net`, only from that network.

    The token is unique: a page sent again after its client moved (IPv4 to IPv6, a new
    DHCP address) finds its first query too, without `net`.
    """
    if not token:
        return None
    # Nearly every submit is its page's first: an indexed look-up by the unique token in
    # plain SQL, and the ORM reads the row only when there is one.
    sql = f"SELECT id FROM {Query._meta.db_table} WHERE form_token = %s"
    params = [token]
    if net is not None:
        sql, params = sql + " AND client_net = %s", [token, net]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    return Query.objects.filter(pk=row[0]).first() if row else None

"""Loading the correlator's in-flight state from the database and committing its output.

One commit = the batch's messages, events, counter increments, attributions, login
aliases and the file's new read position, in one transaction: a kill at any point
leaves the database as it was after the previous commit, and the next run resumes there.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter

from django.db import IntegrityError, connection, transaction

from smtplog import store
from smtplog.ingest.correlate import UNKNOWN, Correlator, EventRow, InternalHops, MessageState
from smtplog.models import Event, LoginAlias, Message, Status

MESSAGE_FIELDS = ("sender", "client_name", "client_ip", "sasl_method", "sasl_username", "size",
                  "nrcpt", "message_id", "origin", "auth_counted", "expired_at", "removed_at")
EVENT_COLUMNS = ("time", "day", "sender", "status", "message_id", "relay", "queue_id",
                 "client_ip", "sasl_username", "recipient", "next_hop", "dsn", "delay",
                 "response")
EVENT_TABLE = Event._meta.db_table


def load_correlator(tz: dt.tzinfo, internal_hops: list[str]) -> Correlator:
    """A correlator holding every message not yet removed, and the known SASL logins."""
    states: dict[int, MessageState] = {}
    origins: dict[int, int] = {}
    waiting = set(
        Event.objects.filter(sender=UNKNOWN, message__removed_at__isnull=True)
        .values_list("message_id", flat=True).distinct()
    )
    for m in Message.objects.filter(removed_at__isnull=True).iterator(chunk_size=5000):
        state = MessageState(m.relay, m.queue_id, m.first_seen, pk=m.pk)
        for field in MESSAGE_FIELDS:
            if field != "origin":
                setattr(state, field, getattr(m, field))
        state.dirty = False
        state.db_waiting = m.pk in waiting
        states[m.pk] = state
        if m.origin_id:
            origins[m.pk] = m.origin_id
    # A re-queued message's origin is usually removed already: load just what is linked.
    missing = set(origins.values()) - states.keys()
    linked = {m.pk: m for m in Message.objects.filter(pk__in=missing)}
    for pk, origin_pk in origins.items():
        origin = states.get(origin_pk)
        if origin is None and origin_pk in linked:
            m = linked[origin_pk]
            origin = MessageState(m.relay, m.queue_id, m.first_seen, pk=m.pk)
            origin.sender, origin.client_ip = m.sender, m.client_ip
            origin.sasl_username, origin.removed_at = m.sasl_username, m.removed_at
            origin.dirty = False
        states[pk].origin = origin
    aliases = dict(LoginAlias.objects.values_list("login", "sender"))
    return Correlator(tz, InternalHops(internal_hops), states.values(), aliases)


def commit(correlator: Correlator) -> tuple[int, int]:
    """Write the correlator's batch output (inside the caller's transaction).

    Returns (events written, messages written).
    """
    messages = [m for m in correlator.touched.values() if m.dirty]
    _save_messages(messages)
    _resolve_aliases(correlator)
    events = correlator.events
    _insert_events(events)
    store.apply_delta(Counter(
        (e.sender, e.day, e.status) for e in events if e.sender not in (UNKNOWN, "<>")
    ))
    for msg in correlator.resolved:
        store.attribute_events(Event.objects.filter(message_id=msg.pk), msg.sender)
    for event in events:
        if event.sender == UNKNOWN and event.message is not None:
            event.message.db_waiting = True
            event.message.waiting = []
    correlator.reset_batch()
    return len(events), len(messages)


def _save_messages(messages: list[MessageState]) -> None:
    """Insert new messages and update changed ones, without the ORM's per-row cost.

    New rows get ids allocated up front, so a re-queued message can point at an origin
    that is new in the same batch (PostgreSQL checks foreign keys at commit).
    """
    new = [m for m in messages if m.pk is None]
    for state, pk in zip(new, _allocate_ids(len(new)), strict=True):
        state.pk = pk
    try:
        with transaction.atomic():  # a savepoint: the rare clash below must not end the batch
            _write_messages(new, [m for m in messages if m not in new] if new else messages)
    except IntegrityError:
        # A "new" message is stored already: the same lines were fed again (standard input
        # has no fingerprint), or a queue ID came back within the second it was born.
        # Take the stored row as this message and write again.
        stored = _stored_ids(new)
        for m in new:
            m.pk = stored.get((m.relay, m.queue_id, m.first_seen), m.pk)
        fresh = [m for m in new if (m.relay, m.queue_id, m.first_seen) not in stored]
        _write_messages(fresh, [m for m in messages if m not in fresh])
    for m in messages:
        m.dirty = False


def _write_messages(new: list[MessageState], old: list[MessageState]) -> None:
    new_rows = [_message_row(m) for m in new]
    old_rows = [_message_row(m) for m in old]
    if connection.vendor == "postgresql":
        _pg_insert_messages(new_rows)
        _pg_update_messages(old_rows)
    else:
        _sql_insert_messages(new_rows)
        _sql_update_messages(old_rows)


def _stored_ids(states: list[MessageState]) -> dict[tuple, int]:
    keys = {(m.relay, m.queue_id) for m in states}
    stored = Message.objects.filter(queue_id__in={q for _, q in keys}).values_list(
        "relay", "queue_id", "first_seen", "id")
    return {(r, q, f): pk for r, q, f, pk in stored if (r, q) in keys}


MESSAGE_COLUMNS = ("id", "relay", "queue_id", "first_seen", "sender", "client_name",
                   "client_ip", "sasl_method", "sasl_username", "size", "nrcpt", "message_id",
                   "origin_id", "auth_counted", "expired_at", "removed_at")
MESSAGE_TABLE = Message._meta.db_table


def _message_row(m: MessageState) -> tuple:
    return (m.pk, m.relay, m.queue_id, m.first_seen, m.sender, m.client_name, m.client_ip,
            m.sasl_method, m.sasl_username, m.size, m.nrcpt, m.message_id,
            m.origin.pk if m.origin is not None else None, m.auth_counted, m.expired_at,
            m.removed_at)


def _allocate_ids(n: int) -> list[int]:
    """n fresh primary keys. SQLite: one writer holds the ingest lock, so MAX(id) is safe."""
    if not n:
        return []
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                f"SELECT nextval(pg_get_serial_sequence('{MESSAGE_TABLE}', 'id')) "
                "FROM generate_series(1, %s)", [n])
            return [row[0] for row in cursor.fetchall()]
        cursor.execute(f"SELECT COALESCE(MAX(id), 0) FROM {MESSAGE_TABLE}")
        first = cursor.fetchone()[0] + 1
        return list(range(first, first + n))


def _pg_insert_messages(rows: list[tuple]) -> None:
    if rows:
        _copy(MESSAGE_TABLE, MESSAGE_COLUMNS, rows)


def _pg_update_messages(rows: list[tuple]) -> None:
    """COPY into a temporary table, then one UPDATE ... FROM it."""
    if not rows:
        return
    with connection.cursor() as cursor:
        cursor.execute(f"CREATE TEMPORARY TABLE IF NOT EXISTS message_changes "
                       f"(LIKE {MESSAGE_TABLE} INCLUDING DEFAULTS) ON COMMIT DELETE ROWS")
    _copy("message_changes", MESSAGE_COLUMNS, rows)
    sets = ", ".join(f"{c} = t.{c}" for c in MESSAGE_COLUMNS[4:])
    with connection.cursor() as cursor:
        cursor.execute(f"UPDATE {MESSAGE_TABLE} AS m SET {sets} FROM message_changes AS t "
                       "WHERE m.id = t.id")


def _sql_insert_messages(rows: list[tuple]) -> None:
    if rows:
        marks = ", ".join(["%s"] * len(MESSAGE_COLUMNS))
        with connection.cursor() as cursor:
            cursor.executemany(f"INSERT INTO {MESSAGE_TABLE} ({', '.join(MESSAGE_COLUMNS)}) "
                               f"VALUES ({marks})", rows)


def _sql_update_messages(rows: list[tuple]) -> None:
    if rows:
        sets = ", ".join(f"{c} = %s" for c in MESSAGE_COLUMNS[4:])
        with connection.cursor() as cursor:
            cursor.executemany(f"UPDATE {MESSAGE_TABLE} SET {sets} WHERE id = %s",
                               [(*row[4:], row[0]) for row in rows])


def _copy(table: str, columns: tuple[str, ...], rows) -> None:
    """PostgreSQL COPY: several times faster than INSERT for a batch of rows."""
    # The raw psycopg cursor: wrap_database_errors turns its errors into Django's.
    with connection.cursor() as cursor, connection.wrap_database_errors, cursor.cursor.copy(
        f"COPY {table} ({', '.join(columns)}) FROM STDIN"
    ) as copy:
        for row in rows:
            copy.write_row(row)


def _resolve_aliases(correlator: Correlator) -> None:
    """A bare login now known: its waiting SASL failures, stored or in this batch, count."""
    if not correlator.new_aliases:
        return
    for event in correlator.events:
        if event.sender == UNKNOWN and event.message is None and event.sasl_username:
            event.sender = correlator.aliases.get(event.sasl_username, UNKNOWN)
    for login, (sender, seen) in correlator.new_aliases.items():
        LoginAlias.objects.update_or_create(login=login,
                                            defaults={"sender": sender, "last_seen": seen})
        store.attribute_events(
            Event.objects.filter(status=Status.AUTH_BLK, sasl_username=login, message=None),
            sender,
        )


def _insert_events(events: list[EventRow]) -> None:
    if not events:
        return
    rows = [(e.time, e.day, e.sender, e.status,
             e.message.pk if e.message is not None else None, e.relay, e.queue_id,
             e.client_ip, e.sasl_username, e.recipient, e.next_hop, e.dsn, e.delay, e.response)
            for e in events]
    if connection.vendor == "postgresql":
        _copy(EVENT_TABLE, EVENT_COLUMNS, rows)
        return
    marks = ", ".join(["%s"] * len(EVENT_COLUMNS))
    with connection.cursor() as cursor:
        cursor.executemany(f"INSERT INTO {EVENT_TABLE} ({', '.join(EVENT_COLUMNS)}) "
                           f"VALUES ({marks})", rows)

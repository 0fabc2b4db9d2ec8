"""Loading the correlator's in-flight state from the database and committing its output.

One commit = the batch's messages, events, counter increments, attributions, login
aliases and the file's new read position, in one transaction: a kill at any point
leaves the database as it was after the previous commit, and the next run resumes there.

A batch is first turned into plain rows (take_batch), then written (write_batch).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import operator
import socket
from collections import Counter, namedtuple
from collections.abc import Callable
from dataclasses import dataclass, field

from django.db import IntegrityError, connection, transaction
from django.db.models import Max, Q
from psycopg import postgres
from psycopg.adapt import Dumper
from psycopg.pq import Format

from smtplog import store
from smtplog.ingest.correlate import (
    EVENT_KEY,
    REPEAT_WINDOW,
    UNKNOWN,
    Correlator,
    InternalHops,
    MessageState,
)
from smtplog.models import Event, LogFile, LoginAlias, Message, RelayPart, Status

# Rows are tuples in the order of the models' own columns, built and read by name: a
# column added to Message or Event is written once the correlator's states carry an
# attribute of that name (MessageState, EventRow).
MESSAGE_TABLE = Message._meta.db_table
MESSAGE_COLUMNS = tuple(f.column for f in Message._meta.concrete_fields)
MESSAGE_KEY = ("relay", "queue_id", "first_seen")  # unique: a queue ID's life on a relay
# What a message row's later batches may change (not its key, nor its id).
MESSAGE_CHANGES = tuple(c for c in MESSAGE_COLUMNS if c != "id" and c not in MESSAGE_KEY)
MessageRow = namedtuple("MessageRow", MESSAGE_COLUMNS)
_message_values = operator.attrgetter(*MESSAGE_COLUMNS)
EVENT_TABLE = Event._meta.db_table
EVENT_COLUMNS = tuple(f.column for f in Event._meta.concrete_fields if not f.primary_key)
_event_values = operator.attrgetter(*EVENT_COLUMNS)
# COPY column types by Django field type: told up front, psycopg picks each column's
# dumper once instead of once per value. COPY's binary format: a time costs psycopg's C
# dumper 0.2 µs instead of 1.4 µs as text, and the server reads it without parsing
# (an event row 2.1 against 3.6 µs on the client, a message row 2.7 against 5.0).
_COPY_TYPES = {
    "CharField": "text",
    "TextField": "text",
    "GenericIPAddressField": "inet",  # (_AddressDumper)
    "DateTimeField": "timestamptz",
    "DateField": "date",
    "BigAutoField": "int8",
    "BigIntegerField": "int8",
    "ForeignKey": "int8",
    "IntegerField": "int4",
    "BooleanField": "bool",
    "FloatField": "float8",
}


def _copy_types(model, columns: tuple[str, ...]) -> list[str]:
    fields = {f.column: f for f in model._meta.concrete_fields}
    return [_COPY_TYPES[fields[c].get_internal_type()] for c in columns]


MESSAGE_TYPES = _copy_types(Message, MESSAGE_COLUMNS)
EVENT_TYPES = _copy_types(Event, EVENT_COLUMNS)


# Taken (per transaction) by a batch that adds login aliases or events waiting for one:
# ingesters of different relays share the aliases, so such batches commit one at a time.
ALIAS_LOCK = int.from_bytes(hashlib.sha256(b"smtplog-login-alias").digest()[:8], "big", signed=True)


def load_correlator(
    tz: dt.tzinfo,
    internal_hops: list[str],
    relay: str | None = None,
    exclude: frozenset[str] = frozenset(),
) -> Correlator:
    """A correlator holding the messages not yet removed (of one relay, of all, or of all
    but those in `exclude`), the
    known SASL logins, and what the last REPEAT_WINDOW of the logs produced (messages
    that ended, events of messages) to recognise repeated lines across runs."""
    states: dict[int, MessageState] = {}
    origins: dict[int, int] = {}
    since = _window_start()

    def in_flight_or_recent(prefix: str = "") -> Q:
        live = Q(**{f"{prefix}removed_at__isnull": True})
        return live if since is None else live | Q(**{f"{prefix}removed_at__gte": since})

    messages = Message.objects.filter(in_flight_or_recent())
    waiting_events = Event.objects.filter(in_flight_or_recent("message__"), sender=UNKNOWN)
    if relay is not None:
        messages = messages.filter(relay=relay)
        waiting_events = waiting_events.filter(message__relay=relay)
    if exclude:
        messages = messages.exclude(relay__in=exclude)
        waiting_events = waiting_events.exclude(message__relay__in=exclude)
    waiting = set(waiting_events.values_list("message_id", flat=True).distinct())
    for m in messages.iterator(chunk_size=5000):
        state = MessageState(m.relay, m.queue_id, m.first_seen, pk=m.pk)
        for name in MESSAGE_CHANGES:
            if name != "origin_id":  # (linked below, to the origin's state)
                setattr(state, name, getattr(m, name))
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
        states[pk].origin = origin
    aliases = dict(LoginAlias.objects.values_list("login", "sender"))
    active = [m for m in states.values() if m.removed_at is None]
    ended = [m for m in states.values() if m.removed_at is not None]
    return Correlator(
        tz,
        InternalHops(internal_hops),
        active,
        aliases,
        ended=ended,
        seen=_recent_events(since, tz, relay, exclude),
    )


def _window_start() -> dt.datetime | None:
    """REPEAT_WINDOW before the latest line read from any file, or by any relay's worker
    of a central log (None: nothing read yet)."""
    times = [
        LogFile.objects.aggregate(latest=Max("last_line_time"))["latest"],
        RelayPart.objects.aggregate(latest=Max("last_line_time"))["latest"],
    ]
    latest = max((t for t in times if t is not None), default=None)
    return None if latest is None else latest - REPEAT_WINDOW


def _recent_events(
    since: dt.datetime | None, tz: dt.tzinfo, relay: str | None, exclude: frozenset[str]
) -> list:
    """(relay, EVENT_KEY fields) of the stored events of messages since `since`."""
    if since is None:
        return []
    events = Event.objects.filter(day__gte=since.astimezone(tz).date(), time__gte=since).exclude(
        queue_id=""
    )
    if relay is not None:
        events = events.filter(relay=relay)
    if exclude:
        events = events.exclude(relay__in=exclude)
    rows = events.values_list("relay", *EVENT_KEY)
    return [(relay, tuple(key)) for relay, *key in rows.iterator(chunk_size=5000)]


@dataclass
class Batch:
    """One commit's worth of writes, as plain values."""

    # Message and event rows: plain tuples in MESSAGE_COLUMNS / EVENT_COLUMNS order, built
    # by those names; read by name as MessageRow where a writer looks into one.
    new_messages: list[tuple] = field(default_factory=list)
    changed_messages: list[tuple] = field(default_factory=list)
    events: list[tuple] = field(default_factory=list)  # in EVENT_COLUMNS order
    delta: Counter = field(default_factory=Counter)
    resolved: list[tuple[int, str]] = field(default_factory=list)  # (message pk, sender)
    aliases: list[tuple[str, str, dt.datetime]] = field(default_factory=list)
    # Logins of this batch's SASL failures whose sender this ingester does not know: one
    # learnt meanwhile by another ingester (another relay) is looked up at commit.
    pending_logins: set[str] = field(default_factory=set)
    new_states: list[MessageState] = field(default_factory=list)  # (their first_seen may move)
    position: Callable[[], None] | None = None  # moves the file's read position


class IdPool:
    """Message primary keys handed out before the rows are written.

    PostgreSQL: from the table's sequence, a block at a time. SQLite: counting on from
    MAX(id), read once per run, which is safe because one ingester runs at a time.
    """

    BLOCK = 5000

    def __init__(self):
        self.free: list[int] = []
        self.next_sqlite: int | None = None
        self.sequence: str | None = None

    def take(self, n: int) -> list[int]:
        if not n:
            return []
        if connection.vendor != "postgresql":
            if self.next_sqlite is None:
                with connection.cursor() as cursor:
                    cursor.execute(f"SELECT COALESCE(MAX(id), 0) FROM {MESSAGE_TABLE}")
                    self.next_sqlite = cursor.fetchone()[0] + 1
            first, self.next_sqlite = self.next_sqlite, self.next_sqlite + n
            return list(range(first, first + n))
        while len(self.free) < n:
            with connection.cursor() as cursor:
                if self.sequence is None:
                    cursor.execute("SELECT pg_get_serial_sequence(%s, 'id')", [MESSAGE_TABLE])
                    self.sequence = cursor.fetchone()[0]
                # The sequence by name, cast once: pg_get_serial_sequence per row cost
                # seven times as much. One array: a row per key cost the client as much.
                cursor.execute(
                    "SELECT array_agg(nextval(%s::regclass)) FROM generate_series(1, %s)",
                    [self.sequence, max(self.BLOCK, n)],
                )
                self.free.extend(cursor.fetchone()[0])
        taken, self.free = self.free[:n], self.free[n:]
        return taken


def take_batch(correlator: Correlator, ids: IdPool) -> Batch:
    """The correlator's output since the last batch, as plain rows."""
    messages = list(correlator.touched.values())  # every message the batch changed
    new = [m for m in messages if m.pk is None]
    for state, pk in zip(new, ids.take(len(new)), strict=True):
        state.pk = pk
    new_ids = {id(m) for m in new}
    _resolve_aliases_in_batch(correlator)
    events = correlator.events
    batch = Batch(
        new_messages=[_message_row(m) for m in new],
        changed_messages=[_message_row(m) for m in messages if id(m) not in new_ids],
        events=[_event_values(e) for e in events],
        delta=Counter(
            (e.sender, e.day, e.status) for e in events if e.sender not in (UNKNOWN, "<>")
        ),
        resolved=[(m.pk, m.sender) for m in correlator.resolved],
        aliases=[(login, sender, seen) for login, (sender, seen) in correlator.new_aliases.items()],
        new_states=new,
        pending_logins={
            e.sasl_username
            for e in events
            if e.sender == UNKNOWN and e.message is None and e.sasl_username
        },
    )
    for event in events:
        if event.sender == UNKNOWN and event.message is not None:
            event.message.db_waiting = True
            event.message.waiting = []
    correlator.reset_batch()
    correlator.forget_old()
    return batch


def write_batch(batch: Batch) -> None:
    """Write one batch in one transaction; once it committed, the batch's new messages
    in memory take the first_seen they were stored with (see _write_messages)."""
    with transaction.atomic():
        if (batch.aliases or batch.pending_logins) and connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_xact_lock(%s)", [ALIAS_LOCK])
        moved = _write_messages(batch)
        _insert_events(batch.events)
        delta = Counter(batch.delta)
        for pk, sender in batch.resolved:
            store.attribute_events(Event.objects.filter(message_id=pk), sender, delta)
        for login, sender, seen in batch.aliases:
            LoginAlias.objects.update_or_create(
                login=login, defaults={"sender": sender, "last_seen": seen}
            )
            _attribute_login(login, sender, delta)
        if batch.pending_logins:
            known = LoginAlias.objects.filter(login__in=batch.pending_logins)
            for login, sender in known.values_list("login", "sender"):
                _attribute_login(login, sender, delta)
        store.apply_delta(delta)  # once, sorted: one lock order for every ingester
        if batch.position is not None:
            batch.position()
    for state in batch.new_states if moved else ():
        state.first_seen = moved.get(state.pk, state.first_seen)


def _attribute_login(login: str, sender: str, delta: Counter) -> None:
    """SASL failures under a bare login, stored before its sender was known."""
    store.attribute_events(
        Event.objects.filter(status=Status.AUTH_BLK, sasl_username=login, message=None),
        sender,
        delta,
    )


def _write_messages(batch: Batch) -> dict[int, dt.datetime]:
    try:
        with transaction.atomic():  # a savepoint: the rare clash below must not end the batch
            _write_message_rows(batch.new_messages, batch.changed_messages)
        return {}
    except IntegrityError:
        pass
    # A new life whose (queue ID, relay, first seen) is stored already: its queue ID came
    # back within the second the stored life began, or a line was repeated after that
    # life had left the correlator's memory (REPEAT_WINDOW). It stays a life of its own:
    # its first_seen moves on by microseconds to the next free one.
    taken = set(_stored_keys(batch.new_messages))
    moved: dict[int, dt.datetime] = {}
    new = []
    for row in map(MessageRow._make, batch.new_messages):
        first_seen = row.first_seen
        while (row.relay, row.queue_id, first_seen) in taken:
            first_seen += dt.timedelta(microseconds=1)
        taken.add((row.relay, row.queue_id, first_seen))
        if first_seen != row.first_seen:
            moved[row.id] = first_seen
            row = row._replace(first_seen=first_seen)
        new.append(row)
    _write_message_rows(new, batch.changed_messages)
    return moved


def _write_message_rows(new_rows: list[tuple], old_rows: list[tuple]) -> None:
    if connection.vendor == "postgresql":
        _pg_insert_messages(new_rows)
        _pg_update_messages(old_rows)
    else:
        _sql_insert_messages(new_rows)
        _sql_update_messages(old_rows)


def _stored_keys(rows: list[tuple]) -> list[tuple]:
    """(relay, queue ID, first seen) of the stored messages with the rows' queue IDs."""
    keys = {(row.relay, row.queue_id) for row in map(MessageRow._make, rows)}
    stored = Message.objects.filter(queue_id__in={q for _, q in keys}).values_list(*MESSAGE_KEY)
    return [key for key in stored if key[:2] in keys]


def _resolve_aliases_in_batch(correlator: Correlator) -> None:
    """A bare login known now: this batch's SASL failures under it count already."""
    if correlator.new_aliases:
        for event in correlator.events:
            if event.sender == UNKNOWN and event.message is None and event.sasl_username:
                event.sender = correlator.aliases.get(event.sasl_username, UNKNOWN)


def _insert_events(rows: list[tuple]) -> None:
    if not rows:
        return
    if connection.vendor == "postgresql":
        _copy(EVENT_TABLE, EVENT_COLUMNS, EVENT_TYPES, rows)
        return
    marks = ", ".join(["%s"] * len(EVENT_COLUMNS))
    with connection.cursor() as cursor:
        cursor.executemany(
            f"INSERT INTO {EVENT_TABLE} ({', '.join(EVENT_COLUMNS)}) VALUES ({marks})",
            _sqlite_times(rows),
        )


def _message_row(m: MessageState) -> tuple:
    # A plain tuple on the hot path (every changed message of every batch): made as a
    # MessageRow it took twice as long (0.6 against 0.3 µs), and COPY takes it in column
    # order anyway.
    return _message_values(m)


def _pg_insert_messages(rows: list[tuple]) -> None:
    if rows:
        _copy(MESSAGE_TABLE, MESSAGE_COLUMNS, MESSAGE_TYPES, rows)


def _pg_update_messages(rows: list[tuple]) -> None:
    """COPY into a temporary table, then one UPDATE ... FROM it."""
    if not rows:
        return
    with connection.cursor() as cursor:
        cursor.execute(
            f"CREATE TEMPORARY TABLE IF NOT EXISTS message_changes "
            f"(LIKE {MESSAGE_TABLE} INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
        )
    _copy("message_changes", MESSAGE_COLUMNS, MESSAGE_TYPES, rows)
    sets = ", ".join(f"{c} = t.{c}" for c in MESSAGE_CHANGES)
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {MESSAGE_TABLE} AS m SET {sets} FROM message_changes AS t WHERE m.id = t.id"
        )


def _sqlite_times(rows: list[tuple]) -> list[tuple]:
    """Times as Django stores them on SQLite (UTC, no offset): it compares them as text."""
    adapt = connection.ops.adapt_datetimefield_value
    return [tuple(adapt(v) if isinstance(v, dt.datetime) else v for v in row) for row in rows]


def _sql_insert_messages(rows: list[tuple]) -> None:
    if rows:
        marks = ", ".join(["%s"] * len(MESSAGE_COLUMNS))
        with connection.cursor() as cursor:
            cursor.executemany(
                f"INSERT INTO {MESSAGE_TABLE} ({', '.join(MESSAGE_COLUMNS)}) VALUES ({marks})",
                _sqlite_times(rows),
            )


def _sql_update_messages(rows: list[tuple]) -> None:
    if rows:
        sets = ", ".join(f"{c} = %s" for c in MESSAGE_CHANGES)
        changes = operator.attrgetter(*MESSAGE_CHANGES)
        with connection.cursor() as cursor:
            cursor.executemany(
                f"UPDATE {MESSAGE_TABLE} SET {sets} WHERE id = %s",
                _sqlite_times([(*changes(r), r.id) for r in map(MessageRow._make, rows)]),
            )


def _copy(table: str, columns: tuple[str, ...], types: list[str], rows) -> None:
    """PostgreSQL COPY: several times faster than INSERT for a batch of rows."""
    # The raw psycopg cursor: wrap_database_errors turns its errors into Django's.
    with connection.cursor() as cursor, connection.wrap_database_errors:
        raw = cursor.cursor
        raw.adapters.register_dumper(None, _AddressDumper)  # (this cursor's; by oid only)
        with raw.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN (FORMAT BINARY)") as copy:
            copy.set_types(types)
            for row in rows:
                copy.write_row(row)


class _AddressDumper(Dumper):
    """A client address as the correlator keeps it (text, junk None already) in COPY's
    binary format for inet. psycopg's own binary inet dumper takes ipaddress objects
    (Python code, and an object made per value)."""

    format = Format.BINARY
    oid = postgres.types["inet"].oid

    def dump(self, obj: str) -> bytes:
        return _inet(obj)


def _inet(address: str) -> bytes:
    """PostgreSQL's binary inet (family, prefix bits, is-CIDR, length, the address), by
    the rule that let the address through (correlate._is_ip)."""
    if ":" in address:
        return b"\x03\x80\x00\x10" + socket.inet_pton(socket.AF_INET6, address)
    return b"\x02\x20\x00\x04" + socket.inet_pton(socket.AF_INET, address)

"""Loading the correlator's in-flight state from the database and committing its output.

One commit = the batch's messages, events, counter increments, attributions, login
aliases and the file's new read position, in one transaction: a kill at any point
leaves the database as it was after the previous commit, and the next run resumes there.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter

from django.db import connection

from smtplog import store
from smtplog.ingest.correlate import UNKNOWN, Correlator, EventRow, InternalHops, MessageState
from smtplog.models import Event, LoginAlias, Message, Status

MESSAGE_FIELDS = ("sender", "client_name", "client_ip", "sasl_method", "sasl_username", "size",
                  "nrcpt", "message_id", "origin", "auth_counted", "expired_at", "removed_at")
EVENT_COLUMNS = ("time", "day", "sender", "status", "message_id", "relay", "queue_id",
                 "client_ip", "sasl_username", "recipient", "next_hop", "dsn", "delay",
                 "response")


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
    """Upsert changed messages; new ones get their primary key (origins first)."""
    pending = messages
    for _ in range(3):  # an origin new in this batch needs its pk before its re-queue does
        later = [m for m in pending if m.origin is not None and m.origin.pk is None]
        now = [m for m in pending if not (m.origin is not None and m.origin.pk is None)]
        _upsert(now)
        if not later:
            break
        pending = later
    for m in messages:
        m.dirty = False


def _upsert(states: list[MessageState]) -> None:
    if not states:
        return
    objs = []
    for s in states:
        obj = Message(pk=s.pk, relay=s.relay, queue_id=s.queue_id, first_seen=s.first_seen)
        for field in MESSAGE_FIELDS:
            if field == "origin":
                obj.origin_id = s.origin.pk if s.origin is not None else None
            else:
                setattr(obj, field, getattr(s, field))
        objs.append(obj)
    # One upsert for new and changed rows alike; it returns the primary keys of new ones.
    Message.objects.bulk_create(
        objs, batch_size=2000, update_conflicts=True,
        unique_fields=["relay", "queue_id", "first_seen"], update_fields=list(MESSAGE_FIELDS),
    )
    for s, o in zip(states, objs, strict=True):
        s.pk = o.pk


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
    if connection.vendor == "postgresql":
        _copy_events(events)
        return
    Event.objects.bulk_create(
        [Event(**{c: _value(e, c) for c in EVENT_COLUMNS}) for e in events], batch_size=2000
    )


def _value(event: EventRow, column: str):
    if column == "message_id":
        return event.message.pk if event.message is not None else None
    return getattr(event, column)


def _copy_events(events: list[EventRow]) -> None:
    """PostgreSQL COPY: several times faster than INSERT for a batch of events."""
    table = Event._meta.db_table
    with connection.cursor() as cursor, cursor.cursor.copy(
        f"COPY {table} ({', '.join(EVENT_COLUMNS)}) FROM STDIN"
    ) as copy:
        for e in events:
            copy.write_row((
                e.time, e.day, e.sender, e.status,
                e.message.pk if e.message is not None else None, e.relay, e.queue_id,
                e.client_ip, e.sasl_username, e.recipient, e.next_hop, e.dsn, e.delay,
                e.response,
            ))


"""Correlation of parsed Postfix records into messages and counted events.

Plain Python, no Django: the persistence layer (smtplog.ingest.persist) loads the
in-flight state into a Correlator, feeds it records, and writes what it produced.
The rules are docs/counting-rules.md: every event counts on the local day of the line
that evidences it, for the envelope sender; the hand-off to the content filter and a
local alias expansion are internal steps, not counted, and the re-queued message keeps
the original's sender, client IP and SASL user; a content filter's discard is a bounce.
docs/postfix-lines.md says which lines these are and how they tie together.

Whatever the lines, feeding them never raises: a syslog repeat of a message's line is
recognised (see Correlator.message and Correlator.first_time) and changes nothing.
"""

from __future__ import annotations

import datetime as dt
import operator
import re
import socket
from collections.abc import Iterable

from smtplog.addresses import MAX_LENGTH, NULL_SENDER, normalize_address
from smtplog.postfix import records as r

UNKNOWN = ""  # sender not known yet: the event waits, uncounted
COUNTED_DELIVERY = frozenset({"sent", "bounced", "deferred"})
COUNTED_REJECT = frozenset({"reject", "milter-reject"})
# How long (in the relay's own log time) a message's end and its events are remembered
# to recognise lines repeated by a syslog relay: such a repeat comes within seconds or
# minutes. A line repeated later than this is taken as new.
REPEAT_WINDOW = dt.timedelta(hours=1)
# amavis's "250 2.7.0 Ok, discarded, id=... - BANNED: ..." and other filters' alike.
_DISCARDED = re.compile(r"\b[Dd]iscarded\b")
_KEPT_IPS = 65536  # client addresses whose check is remembered


class MessageState:
    """One queue ID's life on one relay, as the correlator tracks it."""

    __slots__ = (
        "pk",
        "relay",
        "queue_id",
        "first_seen",
        "sender",
        "client_name",
        "client_ip",
        "sasl_method",
        "sasl_username",
        "size",
        "nrcpt",
        "message_id",
        "origin",
        "auth_counted",
        "expired_at",
        "removed_at",
        "waiting",
        "db_waiting",
        "start",
    )

    def __init__(self, relay: str, queue_id: str, first_seen: dt.datetime, pk: int | None = None):
        self.pk = pk
        self.relay = relay
        self.queue_id = queue_id
        self.first_seen = first_seen
        self.sender = UNKNOWN
        self.client_name = ""
        self.client_ip: str | None = None
        self.sasl_method = ""
        self.sasl_username = ""
        self.size: int | None = None
        self.nrcpt: int | None = None
        self.message_id = ""
        self.origin: MessageState | None = None
        self.auth_counted = False
        self.expired_at: dt.datetime | None = None
        self.removed_at: dt.datetime | None = None
        self.waiting: list[EventRow] = []  # this batch's events waiting for the sender
        self.db_waiting = False  # stored events of this message wait for the sender
        # Its first line (smtpd client=, pickup) as this process saw it: another first
        # line of the queue ID is a new life of it, the same one a repeat.
        self.start: tuple | None = None

    # The Message model's columns that are not attributes here: rows are read by name.
    @property
    def id(self) -> int | None:
        return self.pk

    @property
    def origin_id(self) -> int | None:
        return self.origin.pk if self.origin is not None else None


class EventRow:
    """A counted event, ready to store (sender UNKNOWN while it waits).

    Its attributes are named as the Event model's columns (message_id: the message's
    key), so the persistence layer reads a row by the model's column names.
    """

    __slots__ = (
        "time",
        "day",
        "sender",
        "status",
        "message",
        "relay",
        "queue_id",
        "client_ip",
        "sasl_username",
        "recipient",
        "next_hop",
        "dsn",
        "delay",
        "response",
    )

    def __init__(
        self,
        *,
        time: dt.datetime,
        day: dt.date,
        sender: str,
        status: str,
        relay: str,
        message: MessageState | None = None,
        queue_id: str = "",
        client_ip: str | None = None,
        sasl_username: str = "",
        recipient: str = "",
        next_hop: str = "",
        dsn: str = "",
        delay: float | None = None,
        response: str = "",
    ):
        self.time = time
        self.day = day
        self.sender = sender
        self.status = status
        self.message = message
        self.relay = relay
        self.queue_id = queue_id
        self.client_ip = client_ip
        self.sasl_username = sasl_username
        self.recipient = recipient
        self.next_hop = next_hop
        self.dsn = dsn
        self.delay = delay
        self.response = response

    @property
    def message_id(self) -> int | None:
        """The stored message's key (the event's column of that name)."""
        return self.message.pk if self.message is not None else None


class InternalHops:
    """The relays' own content-filter next hops: "127.0.0.1", "::1", "10.0.0.5:10024"..."""

    def __init__(self, hops: Iterable[str]):
        self.hosts: set[str] = set()
        self.host_ports: set[tuple[str, int]] = set()
        for hop in hops:
            host, port = _split_hop(hop.strip().lower())
            if port is None:
                self.hosts.add(host)
            else:
                self.host_ports.add((host, port))

    def __contains__(self, delivery: r.Delivery) -> bool:
        port = delivery.relay_port
        for host in (delivery.relay_ip.lower(), delivery.relay_host.lower()):
            if host and (host in self.hosts or (host, port) in self.host_ports):
                return True
        if not delivery.relay_ip:  # a bracket-less "relay=127.0.0.1:2525"
            host, port = _split_hop(delivery.relay.lower())
            return host in self.hosts or (host, port) in self.host_ports
        return False


def _is_ip(text: str) -> bool:
    family = socket.AF_INET6 if ":" in text else socket.AF_INET
    try:
        socket.inet_pton(family, text)
    except (OSError, ValueError):
        return False
    return True


def _split_hop(hop: str) -> tuple[str, int | None]:
    if hop.startswith("["):  # [::1]:10024
        host, _, rest = hop[1:].partition("]")
        return host, int(rest[1:]) if rest.startswith(":") and rest[1:].isdigit() else None
    if hop.count(":") == 1:
        host, port = hop.split(":")
        return host, int(port) if port.isdigit() else None
    return hop, None


# What makes two events of a message the same: everything stored but who sent it. The
# store is read back in this order (smtplog.ingest.persist) to remember recent events.
EVENT_KEY = ("queue_id", "time", "status", "recipient", "next_hop", "dsn", "delay", "response")
_event_key = operator.attrgetter(*EVENT_KEY)


class Correlator:
    """Turns records into events; holds the in-flight messages of every relay.

    Besides the messages in flight (`active`), it remembers for REPEAT_WINDOW of each
    relay's log time the messages that ended (`ended`) and the events of messages it
    produced (`seen`), so that a block of lines repeated by syslog changes nothing:
    a line of a queue ID that ended no earlier than the line's own time belongs to that
    ended life (it is not a new message), and an event equal to one already produced is
    not produced again. Lines tied to no message (SASL failures, NOQUEUE rejects) are
    not in this: a client can fail twice in one second, and the log cannot tell that
    from a repeat.
    """

    def __init__(
        self,
        tz: dt.tzinfo,
        internal_hops: InternalHops,
        active: Iterable[MessageState] = (),
        aliases: dict[str, str] | None = None,
        ended: Iterable[MessageState] = (),
        seen: Iterable[tuple[str, tuple]] = (),  # (relay, the EVENT_KEY fields) of events
    ):
        self.tz = tz
        self.internal_hops = internal_hops
        self.active: dict[tuple[str, str], MessageState] = {
            (m.relay, m.queue_id): m for m in active
        }
        self.ended: dict[tuple[str, str], MessageState] = {}
        for m in sorted(ended, key=lambda m: m.removed_at):
            self.ended[(m.relay, m.queue_id)] = m  # the latest life of a queue ID
        self.seen: dict[str, dict[int, dt.datetime]] = {}  # relay -> event key -> time
        for relay, stored in seen:
            self.seen.setdefault(relay, {})[hash(stored)] = stored[1]
        self.aliases: dict[str, str] = dict(aliases or {})
        self._ips: dict[str, str | None] = {}
        self.reset_batch()

    # -- batch outputs, taken by the persistence layer at each commit --------------------
    def reset_batch(self) -> None:
        self.events: list[EventRow] = []
        self.touched: dict[int, MessageState] = {}  # id(state) -> state, changed this batch
        self.resolved: list[MessageState] = []  # stored waiting events now attributable
        self.new_aliases: dict[str, tuple[str, dt.datetime]] = {}  # login -> (sender, time)

    def _touch(self, msg: MessageState) -> MessageState:
        self.touched[id(msg)] = msg
        return msg

    def local_day(self, time: dt.datetime) -> dt.date:
        return time.astimezone(self.tz).date()

    def message(self, relay: str, queue_id: str, time: dt.datetime) -> MessageState:
        """The life of the queue ID that a line of `time` belongs to.

        The one in flight; else the one that ended no earlier than `time` (a repeated or
        late line of it); else a new life begins.
        """
        key = (relay, queue_id)
        msg = self.active.get(key)
        if msg is None:
            msg = self.ended.get(key)
            if msg is None or time > msg.removed_at:
                msg = self.active[key] = MessageState(relay, queue_id, time)
        self.touched[id(msg)] = msg  # _touch, inlined: the hot path
        return msg

    def _earlier_life(self, msg: MessageState, time: dt.datetime) -> MessageState:
        """For a line older than the life `message()` gave: the life of its queue ID that
        ended, when that one covers it (a repeated line of an earlier life must not change
        the new one). Delivery lines need not ask: a repeated event is recognised by
        itself (first_time)."""
        ended = self.ended.get((msg.relay, msg.queue_id))
        return ended if ended is not None and time <= ended.removed_at else msg

    def first_time(self, event: EventRow) -> bool:
        """Whether the event is new (and remember it), or repeats one produced already."""
        seen = self.seen.get(event.relay)
        if seen is None:
            seen = self.seen[event.relay] = {}
        key = hash(_event_key(event))
        if key in seen:
            return False
        seen[key] = event.time
        return True

    def forget_old(self) -> None:
        """Drop what lies more than REPEAT_WINDOW before each relay's latest line seen.

        Called between batches: memory stays bounded by the window, not the log.
        """
        newest: dict[str, dt.datetime] = {}
        for relay, seen in self.seen.items():
            if seen:
                newest[relay] = max(seen.values())
        for msg in self.ended.values():
            if msg.relay not in newest or msg.removed_at > newest[msg.relay]:
                newest[msg.relay] = msg.removed_at
        for relay, seen in self.seen.items():
            if seen:
                cutoff = newest[relay] - REPEAT_WINDOW
                self.seen[relay] = {k: t for k, t in seen.items() if t >= cutoff}
        self.ended = {
            key: msg
            for key, msg in self.ended.items()
            if msg.removed_at >= newest[msg.relay] - REPEAT_WINDOW
        }

    def _ip(self, text: str) -> str | None:
        """The address as logged, or None when it is none or junk the column would refuse
        (an IPv6 zone, "unknown"...)."""
        ip = self._ips.get(text, "")
        if ip == "":
            if len(self._ips) >= _KEPT_IPS:
                self._ips.clear()
            ip = self._ips[text] = text if _is_ip(text) else None
        return ip

    # -- feeding ------------------------------------------------------------------------
    def feed_all(self, records: Iterable[r.Record]) -> None:
        handlers = self._handlers
        for rec in records:
            handler = handlers.get(rec.__class__)
            if handler is not None:
                handler(self, rec)

    def _starts(self, rec: r.Record, start: tuple) -> MessageState | None:
        """The life whose first line (smtpd client=, pickup) `rec` is.

        The same line again is a repeat: that life. A different first line of a queue ID
        whose life had one already is a new life: the queue ID came back (within the
        second its last life ended, or with that life's `removed` lost). None: a line of
        a life older than any remembered.
        """
        key = (rec.host, rec.queue_id)
        msg = self.active.get(key)
        ended = self.ended.get(key)
        if ended is not None and (
            ended.start == start
            or (
                ended.start is None
                and rec.time <= ended.removed_at
                and (msg is None or rec.time < msg.first_seen)
            )
        ):
            msg = ended  # a line of the life that ended: repeated, or late
        elif msg is not None and msg.start not in (None, start):
            if rec.time < msg.first_seen:
                return None
            msg.removed_at = rec.time  # it ended, and its `removed` was not logged
            self.ended[key] = self.active.pop(key)
            self.touched[id(msg)] = msg
            msg = None
        if msg is None:
            msg = self.active[key] = MessageState(rec.host, rec.queue_id, rec.time)
        msg.start = start
        self.touched[id(msg)] = msg
        return msg

    def _client(self, rec: r.ClientLine) -> None:
        start = (rec.time, rec.pid, rec.client_name, rec.client_ip, rec.sasl_username)
        msg = self._starts(rec, start)
        if msg is None:
            return
        if msg.origin is None:  # a re-queued message keeps its origin's client
            msg.client_name = rec.client_name[:255]
            msg.client_ip = self._ip(rec.client_ip)
        if rec.sasl_username:
            msg.sasl_method = rec.sasl_method[:32]
            msg.sasl_username = rec.sasl_username[:MAX_LENGTH]
            self._count_auth(msg)

    def _count_auth(self, msg: MessageState) -> None:
        """Auth_rcv: once per SASL-accepted message, once its sender is known."""
        if msg.auth_counted or not msg.sasl_username or msg.origin is not None:
            return
        if msg.sender == UNKNOWN or msg.sender == NULL_SENDER:
            return
        msg.auth_counted = True
        self._emit(
            msg.first_seen,
            "auth_rcv",
            msg,
            response=f"sasl_method={msg.sasl_method}, sasl_username={msg.sasl_username}",
        )
        login = msg.sasl_username.lower()
        if "@" not in login and self.aliases.get(login) != msg.sender:
            self.aliases[login] = msg.sender
            self.new_aliases[login] = (msg.sender, msg.first_seen)

    def _message_id(self, rec: r.MessageIdLine) -> None:
        msg = self.message(rec.host, rec.queue_id, rec.time)
        if rec.time < msg.first_seen:
            msg = self._earlier_life(msg, rec.time)
        msg.message_id = rec.message_id[:255]

    def _pickup(self, rec: r.PickupLine) -> None:
        self._starts(rec, (rec.time, rec.pid, rec.sender))

    def _from(self, rec: r.QmgrFrom) -> None:
        msg = self.message(rec.host, rec.queue_id, rec.time)
        if rec.time < msg.first_seen:
            msg = self._earlier_life(msg, rec.time)
        if rec.size is not None:
            msg.size = rec.size
        if rec.nrcpt is not None and msg.nrcpt is None:
            msg.nrcpt = rec.nrcpt
        self._set_sender(msg, normalize_address(rec.sender))

    def _set_sender(self, msg: MessageState, sender: str) -> None:
        if msg.sender != UNKNOWN:
            return
        if msg.origin is not None and msg.origin.sender != UNKNOWN:
            sender = msg.origin.sender
        msg.sender = sender
        for event in msg.waiting:
            event.sender = sender
        msg.waiting = []
        if msg.db_waiting:
            msg.db_waiting = False
            self.resolved.append(msg)
        self._count_auth(msg)

    def _removed(self, rec: r.QmgrRemoved) -> None:
        key = (rec.host, rec.queue_id)
        msg = self.active.get(key)
        # (A repeated `removed` finds nothing in flight, or a life begun after it.)
        if msg is not None and rec.time >= msg.first_seen:
            del self.active[key]
            msg.removed_at = rec.time
            self.ended[key] = msg
            self._touch(msg)

    def _expired(self, rec: r.QmgrExpired) -> None:
        msg = self.message(rec.host, rec.queue_id, rec.time)
        if rec.time < msg.first_seen:
            msg = self._earlier_life(msg, rec.time)
        self._set_sender(msg, normalize_address(rec.sender))
        msg.expired_at = rec.time
        reply = "force-expired" if rec.forced else "expired"
        self._emit(rec.time, "expired", msg, response=f"{reply}, returned to sender")

    def _delivery(self, rec: r.Delivery) -> None:
        msg = self.message(rec.host, rec.queue_id, rec.time)
        status = rec.status
        if status == "sent":
            if rec.queued_as and rec in self.internal_hops:  # to the content filter
                self._link(msg, self.message(rec.host, rec.queued_as, rec.time))
                return
            if rec.forwarded_as:  # a local alias or .forward expansion
                self._link(msg, self.message(rec.host, rec.forwarded_as, rec.time))
                return
            if "iscarded" in rec.response and self._discarded(rec):
                status = "bounced"  # the content filter dropped it: it reaches nobody
        elif status not in COUNTED_DELIVERY:
            return
        self._emit(
            rec.time,
            status,
            msg,
            recipient=rec.recipient[:MAX_LENGTH],
            next_hop=rec.relay[:255],
            dsn=rec.dsn[:16],
            delay=rec.delay,
            response=rec.response,
        )

    def _discarded(self, rec: r.Delivery) -> bool:
        """The hand-off to the relay's own content filter answered that it dropped the mail."""
        return rec in self.internal_hops and _DISCARDED.search(rec.response) is not None

    def _link(self, origin: MessageState, requeued: MessageState) -> None:
        """`origin` was re-queued as `requeued` (by the content filter, or an alias
        expansion): it inherits who sent it."""
        if requeued is origin or requeued.origin is origin:
            return
        requeued.origin = origin
        root = origin
        requeued.client_name = root.client_name
        requeued.client_ip = root.client_ip
        requeued.sasl_method = root.sasl_method
        requeued.sasl_username = root.sasl_username
        for event in requeued.waiting:
            event.client_ip = root.client_ip
            event.sasl_username = root.sasl_username
        if origin.sender != UNKNOWN:
            if requeued.sender == UNKNOWN:
                self._set_sender(requeued, origin.sender)
            else:
                requeued.sender = origin.sender

    def _reject(self, rec: r.Reject) -> None:
        if rec.action not in COUNTED_REJECT or not rec.sender:
            return
        sender = normalize_address(rec.sender)
        if sender == NULL_SENDER:
            return
        text = " ".join(part for part in (rec.code, rec.dsn, rec.text) if part)
        event = EventRow(
            time=rec.time,
            day=self.local_day(rec.time),
            sender=sender,
            status="auth_blk",
            relay=rec.host,
            queue_id=rec.queue_id or "",
            client_ip=self._ip(rec.client_ip),
            recipient=rec.recipient[:MAX_LENGTH],
            dsn=rec.dsn[:16],
            response=f"reject: {rec.stage} {text}".strip(),
        )
        # A message's reject (QUEUEID: reject:) is a line of that message: a repeat of
        # it changes nothing. A NOQUEUE reject counts each time.
        if not event.queue_id or self.first_time(event):
            self.events.append(event)

    def _sasl_failure(self, rec: r.SaslFailure) -> None:
        login = rec.sasl_username.strip().lower()
        if not login:
            return  # a Cyrus-era line names nobody
        sender = normalize_address(login) if "@" in login else self.aliases.get(login, UNKNOWN)
        self.events.append(  # tied to no message: counts each time, even when identical
            EventRow(
                time=rec.time,
                day=self.local_day(rec.time),
                sender=sender,
                status="auth_blk",
                relay=rec.host,
                client_ip=self._ip(rec.client_ip),
                sasl_username=login[:MAX_LENGTH],
                response=f"SASL {rec.method} authentication failed: {rec.reason}",
            )
        )

    def _emit(
        self,
        time: dt.datetime,
        status: str,
        msg: MessageState,
        recipient: str = "",
        next_hop: str = "",
        dsn: str = "",
        delay: float | None = None,
        response: str = "",
    ) -> None:
        if msg.sender == NULL_SENDER:
            return  # mail of the null sender belongs to nobody
        event = EventRow(
            time=time,
            day=self.local_day(time),
            sender=msg.sender,
            status=status,
            relay=msg.relay,
            message=msg,
            queue_id=msg.queue_id,
            client_ip=msg.client_ip,
            sasl_username=msg.sasl_username,
            recipient=recipient,
            next_hop=next_hop,
            dsn=dsn,
            delay=delay,
            response=response,
        )
        seen = self.seen.get(msg.relay)  # first_time(), inlined: the hot path
        if seen is None:
            seen = self.seen[msg.relay] = {}
        key = hash(_event_key(event))
        if key in seen:
            return  # a repeated line: the event was produced already
        seen[key] = time
        if msg.sender == UNKNOWN:
            msg.waiting.append(event)
        self.events.append(event)

    _handlers = {
        r.ClientLine: _client,
        r.MessageIdLine: _message_id,
        r.PickupLine: _pickup,
        r.QmgrFrom: _from,
        r.QmgrRemoved: _removed,
        r.QmgrExpired: _expired,
        r.Delivery: _delivery,
        r.Reject: _reject,
        r.SaslFailure: _sasl_failure,
    }

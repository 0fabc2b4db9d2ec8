"""Correlation of parsed Postfix records into messages and counted events.

Plain Python, no Django: the persistence layer (smtplog.ingest.persist) loads the
in-flight state into a Correlator, feeds it records, and writes what it produced.
The rules are SPEC §2: every event counts on the local day of the line that evidences
it, for the envelope sender; the content-filter hand-off is not counted and the
re-queued message keeps the original sender, client IP and SASL user.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from smtplog.postfix import records as r

NULL_SENDER = "<>"
UNKNOWN = ""  # sender not known yet: the event waits, uncounted
COUNTED_DELIVERY = frozenset({"sent", "bounced", "deferred"})
COUNTED_REJECT = frozenset({"reject", "milter-reject"})


def normalize_address(address: str) -> str:
    """Same rule as smtplog.models.normalize_address (kept here so this module stays pure)."""
    address = address.strip()
    if address.startswith("<") and address.endswith(">"):
        address = address[1:-1].strip()
    return address.lower() if address else NULL_SENDER


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


class EventRow:
    """A counted event, ready to store (sender UNKNOWN while it waits)."""

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
        time,
        day,
        sender,
        status,
        message,
        relay,
        queue_id,
        client_ip,
        sasl_username,
        recipient="",
        next_hop="",
        dsn="",
        delay=None,
        response="",
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


def _split_hop(hop: str) -> tuple[str, int | None]:
    if hop.startswith("["):  # [::1]:10024
        host, _, rest = hop[1:].partition("]")
        return host, int(rest[1:]) if rest.startswith(":") and rest[1:].isdigit() else None
    if hop.count(":") == 1:
        host, port = hop.split(":")
        return host, int(port) if port.isdigit() else None
    return hop, None


class Correlator:
    """Turns records into events; holds the in-flight messages of every relay."""

    def __init__(
        self,
        tz: dt.tzinfo,
        internal_hops: InternalHops,
        active: Iterable[MessageState] = (),
        aliases: dict[str, str] | None = None,
    ):
        self.tz = tz
        self.internal_hops = internal_hops
        self.active: dict[tuple[str, str], MessageState] = {
            (m.relay, m.queue_id): m for m in active
        }
        self.aliases: dict[str, str] = dict(aliases or {})
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
        key = (relay, queue_id)
        msg = self.active.get(key)
        if msg is None:
            msg = self.active[key] = MessageState(relay, queue_id, time)
        self.touched[id(msg)] = msg  # _touch, inlined: the hot path
        return msg

    # -- feeding ------------------------------------------------------------------------
    def feed_all(self, records: Iterable[r.Record]) -> None:
        handlers = self._handlers
        for rec in records:
            handler = handlers.get(rec.__class__)
            if handler is not None:
                handler(self, rec)

    def _client(self, rec: r.ClientLine) -> None:
        msg = self.message(rec.host, rec.queue_id, rec.time)
        if msg.origin is None:  # a re-queued message keeps its origin's client
            msg.client_name = rec.client_name[:255]
            msg.client_ip = rec.client_ip or None
        if rec.sasl_username:
            msg.sasl_method = rec.sasl_method[:32]
            msg.sasl_username = rec.sasl_username[:320]
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
        self.message(rec.host, rec.queue_id, rec.time).message_id = rec.message_id[:255]

    def _pickup(self, rec: r.PickupLine) -> None:
        self.message(rec.host, rec.queue_id, rec.time)

    def _from(self, rec: r.QmgrFrom) -> None:
        msg = self.message(rec.host, rec.queue_id, rec.time)
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
        msg = self.active.pop((rec.host, rec.queue_id), None)
        if msg is not None:
            msg.removed_at = rec.time
            self._touch(msg)

    def _expired(self, rec: r.QmgrExpired) -> None:
        msg = self.message(rec.host, rec.queue_id, rec.time)
        self._set_sender(msg, normalize_address(rec.sender))
        msg.expired_at = rec.time
        reply = "force-expired" if rec.forced else "expired"
        self._emit(rec.time, "expired", msg, response=f"{reply}, returned to sender")

    def _delivery(self, rec: r.Delivery) -> None:
        msg = self.message(rec.host, rec.queue_id, rec.time)
        if rec.status == "sent" and rec.queued_as and rec in self.internal_hops:
            self._link(msg, self.message(rec.host, rec.queued_as, rec.time))
            return
        if rec.status not in COUNTED_DELIVERY:
            return
        self._emit(
            rec.time,
            rec.status,
            msg,
            recipient=rec.recipient[:320],
            next_hop=rec.relay[:255],
            dsn=rec.dsn[:16],
            delay=rec.delay,
            response=rec.response,
        )

    def _link(self, origin: MessageState, requeued: MessageState) -> None:
        """The content filter re-queued `origin` as `requeued`: it inherits who sent it."""
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
        self.events.append(
            EventRow(
                rec.time,
                self.local_day(rec.time),
                sender,
                "auth_blk",
                None,
                rec.host,
                rec.queue_id or "",
                rec.client_ip or None,
                "",
                rec.recipient[:320],
                "",
                rec.dsn[:16],
                None,
                f"reject: {rec.stage} {text}".strip(),
            )
        )

    def _sasl_failure(self, rec: r.SaslFailure) -> None:
        login = rec.sasl_username.strip().lower()
        if not login:
            return  # a Cyrus-era line names nobody
        sender = normalize_address(login) if "@" in login else self.aliases.get(login, UNKNOWN)
        self.events.append(
            EventRow(
                rec.time,
                self.local_day(rec.time),
                sender,
                "auth_blk",
                None,
                rec.host,
                "",
                rec.client_ip or None,
                login[:320],
                "",
                "",
                "",
                None,
                f"SASL {rec.method} authentication failed: {rec.reason}",
            )
        )

    def _emit(self, time: dt.datetime, status: str, msg: MessageState, **fields) -> None:
        if msg.sender == NULL_SENDER:
            return  # mail of the null sender belongs to nobody
        event = EventRow(
            time,
            self.local_day(time),
            msg.sender,
            status,
            msg,
            msg.relay,
            msg.queue_id,
            msg.client_ip,
            msg.sasl_username,
            **fields,
        )
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

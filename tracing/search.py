"""Message trace: find messages by what staff know of them, each with its whole path.

A *hop* is one Message row: a queue ID's life on a relay. The content filter's hand-off
and a local alias's `forwarded as` re-queue a message under a new queue ID, whose row
points back at the old one (`origin`). A *chain* is a first hop and every hop re-queued
from it: what a user calls "my message". An event belongs to a hop by its `message`
link; one without a link but with a queue ID (a reject logged under the queue ID) to the
life of that queue ID on that relay which it falls in. Refusals logged without a queue ID
(`NOQUEUE: reject`, SASL failures) belong to no message and are results of their own.

The search reads events when it is given addresses, a client or a login (the indexes
of the report serve a sender, a recipient index the recipients), and messages when it
is given a queue ID or a Message-ID. Results come newest first, one per chain, however
many of its hops or events matched.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import ipaddress
from collections import defaultdict
from collections.abc import Iterable, Iterator

from django.conf import settings
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from queries import explain
from smtplog.ingest.correlate import InternalHops
from smtplog.models import NULL_SENDER, Event, Message, Status, normalize_address

PAGE_SIZE = 50
EXPORT_LIMIT = 10_000  # result rows in one CSV or command run
CHUNK = 500  # matching rows read at a time while collecting a page
NEARBY = dt.timedelta(hours=1)  # refusals of the same client shown beside a message
NEARBY_LIMIT = 50
DELIVERY = (Status.SENT, Status.BOUNCED, Status.DEFERRED)
FINAL = (Status.SENT, Status.BOUNCED)
MAX_DEPTH = 8  # hops in a chain: a filter and a forward or two; a bound against bad data


@dataclasses.dataclass(frozen=True)
class Criteria:
    """One search. Addresses are whole, or a beginning: see `address_filter`."""

    since: dt.datetime
    until: dt.datetime
    sender: str = ""
    recipient: str = ""
    queue_id: str = ""
    message_id: str = ""
    client_ip: str = ""
    sasl_username: str = ""
    relay: str = ""
    status: str = ""

    def as_dict(self) -> dict:
        """The fields given, as JSON values (the audit, the command's JSON)."""
        values = {}
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if isinstance(value, dt.datetime):
                values[field.name] = timezone.localtime(value).isoformat()
            elif value:
                values[field.name] = value
        return values


def is_prefix(value: str) -> bool:
    """`alice@`, `alice@cs.` and `ali*` are beginnings; anything else is a whole value."""
    return value.endswith(("@", ".", "*"))


def address_filter(field: str, value: str) -> Q:
    """An address, whole or by its beginning (addresses are stored in lower case)."""
    value = value.strip().lower()
    if is_prefix(value):
        return Q(**{f"{field}__startswith": value.rstrip("*")})
    return Q(**{field: normalize_address(value)})


def login_filter(field: str, value: str) -> Q:
    """A SASL login, whole or by its beginning; relays log them in any case."""
    value = value.strip()
    if is_prefix(value):
        return Q(**{f"{field}__istartswith": value.rstrip("*")})
    return Q(**{f"{field}__iexact": value})


# Results


# Where a recipient ended up: a final status, or why the logs show none.
RECIPIENT_STATUSES = {
    "sent": gettext_lazy("sent"),
    "bounced": gettext_lazy("bounced"),
    "expired": gettext_lazy("expired"),
    "deferred": gettext_lazy("still deferred"),
    "removed": gettext_lazy("removed, no final status"),
    "refused": gettext_lazy("refused by the relay"),
}


@dataclasses.dataclass(frozen=True)
class Recipient:
    """A recipient of a message and where it ended up."""

    address: str
    status: str  # a key of RECIPIENT_STATUSES
    attempts: int
    last_time: dt.datetime
    last_reply: str

    @property
    def label(self) -> str:
        return str(RECIPIENT_STATUSES[self.status])


@dataclasses.dataclass(frozen=True)
class Gap:
    """Something the logs do not show, said instead of guessed."""

    code: str
    text: str


class Chain:
    """A message: its first hop, the hops re-queued from it, and the events of them all."""

    kind = "message"

    def __init__(self, hops: list[Message], events: list[Event], hop_of: dict[int, Message]):
        self.hops = hops
        self.events = events
        self.hop_of = hop_of  # event id -> its hop

    @property
    def root(self) -> Message:
        return self.hops[0]

    @property
    def time(self) -> dt.datetime:
        return self.root.first_seen

    @property
    def last_time(self) -> dt.datetime:
        """When the logs last said something of it."""
        times = [e.time for e in self.events] + [h.removed_at for h in self.hops if h.removed_at]
        return max([self.time, *times])

    @property
    def relay(self) -> str:
        return self.root.relay

    @property
    def queue_ids(self) -> list[str]:
        return [hop.queue_id for hop in self.hops]

    @property
    def sender(self) -> str:
        return self.root.sender

    @property
    def client_ip(self) -> str:
        return self.root.client_ip or ""

    @property
    def attempts(self) -> int:
        return sum(1 for e in self.events if e.status in DELIVERY)

    def recipients(self) -> list[Recipient]:
        """Each recipient's last word: a final status, or why there is none."""
        by_address: dict[str, list[Event]] = defaultdict(list)
        for event in self.events:
            if event.recipient and event.status in (*DELIVERY, Status.AUTH_BLK):
                by_address[event.recipient].append(event)
        return [self._recipient(address, events) for address, events in by_address.items()]

    def _recipient(self, address: str, events: list[Event]) -> Recipient:
        attempts = [e for e in events if e.status in DELIVERY]
        if not attempts:  # refused by the relay, never queued for it
            return Recipient(address, "refused", 0, events[-1].time, events[-1].response)
        last = attempts[-1]
        finals = [e for e in attempts if e.status in FINAL]
        if finals:
            status = finals[-1].status
            last = finals[-1]
        else:
            hop = self.hop_of[last.id]
            if hop.expired_at is not None:
                status = "expired"
            elif hop.removed_at is not None:
                status = "removed"
            else:
                status = "deferred"
        return Recipient(address, status, len(attempts), last.time, last.response)

    def gaps(self) -> list[Gap]:
        return chain_gaps(self)


class LoneEvent:
    """An event tied to no stored message: `NOQUEUE: reject`, a SASL authentication
    failure, or (rarely) an attempt of a message whose row is gone."""

    kind = "event"

    def __init__(self, event: Event):
        self.event = event
        self.events = [event]

    time = property(lambda self: self.event.time)
    last_time = time
    relay = property(lambda self: self.event.relay)
    sender = property(lambda self: self.event.sender)
    client_ip = property(lambda self: self.event.client_ip or "")

    @property
    def queue_ids(self) -> list[str]:
        return [self.event.queue_id] if self.event.queue_id else []

    @property
    def attempts(self) -> int:
        return int(self.event.status in DELIVERY)

    @property
    def is_sasl_failure(self) -> bool:
        return self.event.status == Status.AUTH_BLK and not self.event.recipient

    def recipients(self) -> list[Recipient]:
        e = self.event
        if not e.recipient:
            return []
        status = "refused" if e.status == Status.AUTH_BLK else e.status
        return [Recipient(e.recipient, status, self.attempts, e.time, e.response)]

    def gaps(self) -> list[Gap]:
        if self.event.status == Status.AUTH_BLK:
            return []
        text = _("The message this attempt belongs to is not in the retained logs.")
        return [Gap("message_not_retained", text)]


Result = Chain | LoneEvent


# What the logs do not show


def chain_gaps(chain: Chain) -> list[Gap]:
    gaps = []
    root = chain.root
    if root.origin_id is not None:
        gaps.append(
            Gap(
                "origin_not_retained",
                _(
                    "It was re-queued from an earlier message (before the content filter, "
                    "or before a forward) that is not in the retained logs."
                ),
            )
        )
    elif is_internal_client(root):
        gaps.append(
            Gap(
                "received_from_internal",
                _(
                    "It was received from %(client)s, the relay itself or its content "
                    "filter, and no earlier message links to it: if it is the filter's "
                    "re-injection, the message before the filter is not in the retained "
                    "logs."
                )
                % {"client": root.client_ip or root.client_name},
            )
        )
    elif not (root.client_ip or root.client_name or root.message_id):
        gaps.append(
            Gap(
                "seen_from_middle",
                _(
                    "Seen only from its middle: the logs begin after it was received, so "
                    "its client, SASL login, size and Message-ID are not known."
                ),
            )
        )
    if root.sender == NULL_SENDER:
        gaps.append(
            Gap(
                "null_sender",
                _(
                    "Mail from the null sender (a notice the relay generated): its "
                    "deliveries are not recorded."
                ),
            )
        )
    elif not root.sender:
        gaps.append(
            Gap(
                "sender_unknown",
                _(
                    "Its envelope sender was never logged (no qmgr from= line in the "
                    "retained logs): its attempts count for nobody."
                ),
            )
        )
    gaps += recipient_gaps(chain)
    return gaps


def recipient_gaps(chain: Chain) -> list[Gap]:
    gaps = []
    for recipient in chain.recipients():
        when = timezone.localtime(recipient.last_time).strftime("%Y-%m-%d %H:%M:%S")
        if recipient.status == "deferred":
            text = _("%(recipient)s: still in the queue, last deferred at %(time)s.")
            gaps.append(
                Gap("still_in_queue", text % {"recipient": recipient.address, "time": when})
            )
        elif recipient.status == "removed":
            text = _(
                "%(recipient)s: last deferred at %(time)s, then the message left the queue "
                "with no final status logged (deleted by an administrator, or lines missing)."
            )
            gaps.append(
                Gap("no_final_status", text % {"recipient": recipient.address, "time": when})
            )
    last = chain.hops[-1]
    if chain.root.sender != NULL_SENDER and not any(e.status in DELIVERY for e in chain.events):
        if last.removed_at is None and last.expired_at is None:
            text = _("No delivery attempt logged yet: the message is still in the queue.")
            gaps.append(Gap("no_attempt_yet", text))
        elif last.expired_at is None:
            text = _("It left the queue with no delivery attempt logged.")
            gaps.append(Gap("no_attempt_logged", text))
    return gaps


def is_internal_client(message: Message) -> bool:
    """Received from the relay itself: loopback, or a configured content-filter host."""
    hops = InternalHops(settings.SMTPLOG_INTERNAL_NEXT_HOPS)
    hosts = hops.hosts | {host for host, _port in hops.host_ports}
    if message.client_ip and (
        message.client_ip in hosts or ipaddress.ip_address(message.client_ip).is_loopback
    ):
        return True
    return message.client_name.lower() in hosts


# The search


def search(
    criteria: Criteria, limit: int = PAGE_SIZE, offset: int = 0
) -> tuple[list[Result], bool]:
    """Results `offset` .. `offset + limit` and whether more follow.

    Newest first: by the latest line that matched (a message received last week and
    deferred an hour ago comes before one received and delivered this morning).
    """
    keys: list[int | Event] = []  # a chain's root id, or a lone event
    seen: set[int] = set()
    for chunk in _matching(criteria):
        for key in _result_keys(chunk):
            if isinstance(key, Event) or key not in seen:
                if not isinstance(key, Event):
                    seen.add(key)
                keys.append(key)
        if len(keys) > offset + limit:
            break
    keys = keys[offset : offset + limit + 1]
    return _results(keys[:limit]), len(keys) > limit


def matching(criteria: Criteria) -> QuerySet[Message] | QuerySet[Event]:
    """The hops (by queue ID or Message-ID) or else the events that match, newest first."""
    if criteria.queue_id or criteria.message_id:
        return _matching_messages(criteria).order_by("-first_seen", "-id")
    return _matching_events(criteria).order_by("-time", "-id")


def _matching(criteria: Criteria) -> Iterator[list[Message] | list[Event]]:
    """The matching rows a chunk at a time (keyset pagination: no OFFSET to skip)."""
    rows = matching(criteria)
    time_field = "first_seen" if rows.model is Message else "time"
    chunk = list(rows[:CHUNK])
    while chunk:
        yield chunk
        last = chunk[-1]
        at = getattr(last, time_field)
        before = Q(**{f"{time_field}__lt": at}) | Q(**{time_field: at, "id__lt": last.id})
        chunk = list(rows.filter(before)[:CHUNK]) if len(chunk) == CHUNK else []


def _matching_events(c: Criteria) -> QuerySet[Event]:
    # `day` as well as `time`: the block-range index on day finds a range's rows.
    events = Event.objects.filter(
        time__gte=c.since,
        time__lte=c.until,
        day__gte=timezone.localdate(c.since),
        day__lte=timezone.localdate(c.until),
    )
    if c.sender:
        events = events.filter(address_filter("sender", c.sender))
    if c.recipient:
        events = events.filter(address_filter("recipient", c.recipient))
    if c.client_ip:
        events = events.filter(client_ip=c.client_ip)
    if c.sasl_username:
        events = events.filter(login_filter("sasl_username", c.sasl_username))
    if c.relay:
        events = events.filter(relay=c.relay)
    if c.status:
        events = events.filter(status=c.status)
    return events


def _matching_messages(c: Criteria) -> QuerySet[Message]:
    """Hops by queue ID or Message-ID whose life overlaps the range, and the other fields."""
    hops = Message.objects.filter(first_seen__lte=c.until).exclude(removed_at__lt=c.since)
    if c.queue_id:
        hops = hops.filter(queue_id=c.queue_id)
    if c.message_id:
        # By its first hop (the copies re-queued from it carry the same Message-ID, and
        # only first hops are indexed by it), unless a queue ID names the hop.
        hops = hops.filter(message_id=c.message_id)
        if not c.queue_id:
            hops = hops.filter(origin__isnull=True)
    if c.sender:
        hops = hops.filter(address_filter("sender", c.sender))
    if c.client_ip:
        hops = hops.filter(client_ip=c.client_ip)
    if c.sasl_username:
        hops = hops.filter(login_filter("sasl_username", c.sasl_username))
    if c.relay:
        hops = hops.filter(relay=c.relay)
    if c.recipient or c.status:
        events = Event.objects.filter(message=OuterRef("pk"))
        if c.recipient:
            events = events.filter(address_filter("recipient", c.recipient))
        if c.status:
            events = events.filter(status=c.status)
        hops = hops.filter(Exists(events))
    return hops


def _result_keys(chunk: list[Message] | list[Event]) -> list[int | Event]:
    """Each row's result: its chain's root id, or the event itself when it has no message."""
    if chunk and isinstance(chunk[0], Message):
        hop_ids: list[int | None] = [m.id for m in chunk]
    else:
        owners = hops_of(chunk)
        hop_ids = [owners.get(e.id) for e in chunk]
    roots = root_ids(h for h in hop_ids if h is not None)
    return [roots.get(h, row) for h, row in zip(hop_ids, chunk, strict=True)]


def hops_of(events: list[Event]) -> dict[int, int]:
    """Event id -> the id of its hop, for the events that belong to one."""
    owners = {e.id: e.message_id for e in events if e.message_id is not None}
    unlinked = [e for e in events if e.message_id is None and e.queue_id]
    if unlinked:
        lives = _lives({(e.relay, e.queue_id) for e in unlinked})
        for event in unlinked:
            life = _life_at(lives.get((event.relay, event.queue_id), []), event.time)
            if life is not None:
                owners[event.id] = life.id
    return owners


def _lives(keys: set[tuple[str, str]]) -> dict[tuple[str, str], list[Message]]:
    """Every stored life of each (relay, queue ID), oldest first."""
    lives: dict[tuple[str, str], list[Message]] = defaultdict(list)
    stored = Message.objects.filter(queue_id__in={q for _, q in keys}).only(
        "id", "relay", "queue_id", "first_seen", "removed_at"
    )
    for message in stored.order_by("first_seen", "id"):
        if (message.relay, message.queue_id) in keys:
            lives[message.relay, message.queue_id].append(message)
    return lives


def _life_at(lives: list[Message], time: dt.datetime) -> Message | None:
    """The life a line at `time` belongs to: the last one begun by then, if not yet over."""
    begun = [m for m in lives if m.first_seen <= time]
    if not begun or (begun[-1].removed_at is not None and begun[-1].removed_at < time):
        return None
    return begun[-1]


def root_ids(hop_ids: Iterable[int]) -> dict[int, int]:
    """Hop id -> the id of the first hop of its chain that is still stored."""
    origin: dict[int, int | None] = {}
    todo = set(hop_ids)
    for _depth in range(MAX_DEPTH):
        if not todo:
            break
        found = dict(Message.objects.filter(pk__in=todo).values_list("id", "origin_id"))
        origin.update(found)
        todo = {o for o in found.values() if o is not None and o not in origin}
    roots = {}
    for hop in list(origin):
        root, steps = hop, 0
        while origin.get(root) in origin and steps < MAX_DEPTH:  # a purged origin: stop
            root, steps = origin[root], steps + 1
        roots[hop] = root
    return roots


def _results(keys: list[int | Event]) -> list[Result]:
    chains = {c.root.id: c for c in chains_of([k for k in keys if not isinstance(k, Event)])}
    return [LoneEvent(k) if isinstance(k, Event) else chains[k] for k in keys]


def chains_of(root_ids: list[int]) -> list[Chain]:
    """The chains of these first hops, with every event of every hop."""
    # First hop first, then the hops re-queued from it, one generation at a time.
    members: dict[int, list[Message]] = {m.id: [m] for m in Message.objects.filter(pk__in=root_ids)}
    root_of = {pk: pk for pk in members}
    frontier = list(members)
    for _depth in range(MAX_DEPTH):
        if not frontier:
            break
        children = requeued_from(frontier)
        frontier = []
        for child in children:
            if child.id not in root_of:
                root_of[child.id] = root_of[child.origin_id]
                members[root_of[child.id]].append(child)
                frontier.append(child.id)
    hops = {hop.id: hop for chain in members.values() for hop in chain}
    events = events_of(list(hops.values()))
    by_root: dict[int, list[Event]] = defaultdict(list)
    hop_of = {}
    for event, hop_id in events:
        hop_of[event.id] = hops[hop_id]
        by_root[root_of[hop_id]].append(event)
    return [Chain(chain, by_root[pk], hop_of) for pk, chain in members.items()]


def requeued_from(hop_ids: list[int]) -> QuerySet[Message]:
    return Message.objects.filter(origin__in=hop_ids).order_by("first_seen", "id")


def events_of(hops: list[Message]) -> list[tuple[Event, int]]:
    """The events of these hops, oldest first, each with its hop's id."""
    if not hops:
        return []
    ids = {hop.id for hop in hops}
    candidates = Event.objects.filter(
        Q(message__in=ids)
        | Q(
            message__isnull=True,
            queue_id__in={hop.queue_id for hop in hops},
            time__gte=min(hop.first_seen for hop in hops),
        )
    ).order_by("time", "id")
    candidates = list(candidates)
    owners = hops_of(candidates)
    return [(e, owners[e.id]) for e in candidates if owners.get(e.id) in ids]


def chain_of(message: Message) -> Chain:
    """The whole chain a hop belongs to."""
    root = root_ids([message.id])[message.id]
    return chains_of([root])[0]


def nearby_refusals(chain: Chain) -> list[Event]:
    """Rejects and SASL failures of the same client within NEARBY of the message."""
    client = chain.root.client_ip
    if not client or is_internal_client(chain.root):
        return []
    own = {e.id for e in chain.events}
    refusals = refusals_near(client, chain.time)[: NEARBY_LIMIT + len(own)]
    return [e for e in refusals if e.id not in own][:NEARBY_LIMIT]


def refusals_near(client: str, time: dt.datetime) -> QuerySet[Event]:
    return Event.objects.filter(
        status=Status.AUTH_BLK,
        client_ip=client,
        time__gte=time - NEARBY,
        time__lte=time + NEARBY,
    ).order_by("time", "id")


def explanations(events: list[Event]) -> list[explain.Explanation]:
    """Plain-language explanations of the codes and replies of these events."""
    keys = {
        explain.key_of(e.status, e.dsn, e.response)
        for e in events
        if e.status in (*DELIVERY, Status.AUTH_BLK)
    }
    return explain.explain(keys - {""})


# A message's whole path


@dataclasses.dataclass(frozen=True)
class Step:
    """One line of a message's path: what happened to which hop, when."""

    time: dt.datetime
    kind: str  # received, requeued, accepted, refused, attempt, expired, removed
    hop: Message
    event: Event | None = None
    origin: Message | None = None  # requeued: the hop it was re-queued from


STEP_ORDER = ("received", "requeued", "accepted", "refused", "attempt", "expired", "removed")
EVENT_STEPS = {Status.AUTH_RCV: "accepted", Status.AUTH_BLK: "refused", Status.EXPIRED: "expired"}


def path(chain: Chain) -> list[Step]:
    """Everything the logs say of the message, in time order."""
    by_id = {hop.id: hop for hop in chain.hops}
    steps = [Step(chain.root.first_seen, "received", chain.root)]
    steps += [
        Step(hop.first_seen, "requeued", hop, origin=by_id.get(hop.origin_id))
        for hop in chain.hops[1:]
    ]
    steps += [
        Step(e.time, EVENT_STEPS.get(e.status, "attempt"), chain.hop_of[e.id], event=e)
        for e in chain.events
    ]
    steps += [Step(hop.removed_at, "removed", hop) for hop in chain.hops if hop.removed_at]
    return sorted(steps, key=lambda s: (s.time, STEP_ORDER.index(s.kind)))

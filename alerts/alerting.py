"""Nightly alerts to heavy senders: who gets one, what it says, and sending it exactly once.

The selection reads only DailyCounter (one indexed day), so the pass costs the same
however many events the day had; only the few senders alerted have their events read,
and then only in aggregate. Exactly once rests on two things in the database: the
unique (sender, day) Alert row, inserted before anything is sent, and the claim, a
conditional UPDATE that exactly one worker can win.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import logging
import re
from collections import Counter
from dataclasses import dataclass, field

from django.conf import settings
from django.db.models import Case, Count, F, Q, TextField, Value, When
from django.db.models.functions import StrIndex, Substr
from django.utils import timezone

from alerts.models import Alert
from smtplog import delivery
from smtplog.domains import is_campus_address
from smtplog.emails import make_message
from smtplog.models import COUNTER_FIELDS, NULL_SENDER, DailyCounter, Event, Status
from smtplog.retention import cutoff

# The mail is bilingual (we don't know the sender's language): these templates switch
# language per section; this is the language everything outside them renders in.
ALERT_LANGUAGE = "zh-hant"
TOP = 10  # rows in each list of the mail
log = logging.getLogger(__name__)
# What a bounce reply says of one recipient or one attempt, masked so that the same reason
# given for many recipients is one row: the address, IP addresses, ids (a token of 6+
# characters with a digit: queue and transaction ids, host names with numbers, times) and
# a URL's path. The DSN codes (550-5.1.1, 5.7.1) and the words stay.
_URL_RE = re.compile(r"\b(https?://[^/\s?#<>()\[\]]+)[^\s<>()\[\]]*", re.IGNORECASE)
_ADDRESS_RE = re.compile(r"<?[^\s<>@()\[\]\"']+@[^\s<>()\[\]\"']+>?")
_IP_RE = re.compile(
    r"\b(?:\d{1,3}(?:\.\d{1,3}){3}|(?:IPv6:)?[0-9A-Fa-f]*:[0-9A-Fa-f:.]*:[0-9A-Fa-f.]*)\b"
)
_CODE_RE = re.compile(r"(?:\d{3}[ -])?[245]\.\d{1,3}\.\d{1,3}")
_TOKEN_RE = re.compile(r"[\w.:/+=-]*\d[\w.:/+=-]*")
MASK = "<…>"


def reply_pattern(reply: str) -> str:
    """The reply with what differs from recipient to recipient masked, spaces collapsed."""
    reply = _URL_RE.sub(lambda m: m[1] + ("/…" if len(m[0]) > len(m[1]) + 1 else ""), reply)
    reply = _ADDRESS_RE.sub(MASK, reply)
    reply = _IP_RE.sub(lambda m: MASK if _is_ip(m[0]) else m[0], reply)
    reply = _TOKEN_RE.sub(lambda m: _mask_token(m[0]), reply)
    return " ".join(reply.split())


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text.removeprefix("IPv6:"))
    except ValueError:
        return False
    return True


def _mask_token(token: str) -> str:
    if len(token) < 6 or _CODE_RE.fullmatch(token.rstrip(".,;:")):
        return token
    return MASK


@dataclass
class Candidate:
    """A sender-day at or over a threshold, and the counters that put it there."""

    sender: str
    day: dt.date
    counts: dict[str, int] = field(repr=False)
    alert: Alert | None = None  # the row already made for it, if any

    @property
    def reasons(self) -> list[str]:
        reasons = []
        if self.counts["total"] >= settings.SMTPLOG_ALERT_SUM_THRESHOLD:
            reasons.append(f"Sum {self.counts['total']} >= {settings.SMTPLOG_ALERT_SUM_THRESHOLD}")
        if self.counts["bounced"] >= settings.SMTPLOG_ALERT_BOUNCE_THRESHOLD:
            reasons.append(
                f"Bounced {self.counts['bounced']} >= {settings.SMTPLOG_ALERT_BOUNCE_THRESHOLD}"
            )
        return reasons


def _campus_q() -> Q:
    # A cheap SQL pre-filter; is_campus_address has the last word.
    q = Q()
    for domain in settings.SMTPLOG_CAMPUS_DOMAINS:
        q |= Q(sender__endswith="@" + domain) | Q(sender__endswith="." + domain)
    return q


def over_threshold(day: dt.date) -> list[Candidate]:
    """Campus senders whose counters of `day` reach the Sum or the Bounced threshold."""
    rows = (
        DailyCounter.objects.filter(day=day)
        .filter(
            Q(total__gte=settings.SMTPLOG_ALERT_SUM_THRESHOLD)
            | Q(bounced__gte=settings.SMTPLOG_ALERT_BOUNCE_THRESHOLD)
        )
        .filter(_campus_q())
        .exclude(sender__in=("", NULL_SENDER))
        .order_by("-total", "sender")
        .values("sender", "total", *COUNTER_FIELDS)
    )
    candidates = [Candidate(r.pop("sender"), day, r) for r in rows]
    candidates = [c for c in candidates if is_campus_address(c.sender)]
    alerts = {
        a.sender: a
        for a in Alert.objects.filter(day=day, sender__in=[c.sender for c in candidates])
    }
    for candidate in candidates:
        candidate.alert = alerts.get(candidate.sender)
    return candidates


def catch_up_days(now: dt.datetime | None = None) -> list[dt.date]:
    """The days a nightly pass covers, oldest first: yesterday and the catch-up days before it.

    Days missed while beat or the workers were down are in here; a day already alerted
    costs one indexed lookup. The day the retention cutoff falls in is partly purged
    already, so it and older days are left out.
    """
    today = timezone.localdate(now)
    first_incomplete = timezone.localdate(cutoff(now))
    days = [today - dt.timedelta(days=n) for n in range(settings.SMTPLOG_ALERT_CATCHUP_DAYS, 0, -1)]
    return [day for day in days if day > first_incomplete]


def create_alerts(candidates: list[Candidate], now: dt.datetime | None = None) -> int:
    """Insert the Alert rows not made yet (a concurrent insert of the same row is a no-op)."""
    now = now or timezone.now()
    new = [
        Alert(
            sender=c.sender,
            day=c.day,
            total=c.counts["total"],
            bounced=c.counts["bounced"],
            created=now,
        )
        for c in sorted(candidates, key=lambda c: (c.day, c.sender))
        if c.alert is None
    ]
    # Sorted: two passes inserting the same rows take their locks in the same order.
    Alert.objects.bulk_create(new, ignore_conflicts=True)
    return len(new)


def _claimable(now: dt.datetime) -> Q:
    # A claim older than the lease belongs to a worker that was killed, so another may
    # take it over. (A worker dying after the SMTP server accepted the mail but before it
    # recorded "sent" is the one way to get a second mail; SMTP itself has the same window.)
    return Q(state=Alert.State.PENDING) | Q(
        state=Alert.State.SENDING, claimed_at__lt=now - delivery.CLAIM_LEASE
    )


def prepare_alerts(days: list[dt.date], now: dt.datetime | None = None) -> list[int]:
    """Make the Alert rows of `days` and return the ids of those still to send."""
    now = now or timezone.now()
    for day in days:
        create_alerts(over_threshold(day), now)
    return list(
        Alert.objects.filter(_claimable(now), day__in=days)
        .order_by("day", "id")
        .values_list("id", flat=True)
    )


def claim(alert_id: int, now: dt.datetime | None = None) -> bool:
    """Take the alert for this worker; False when it is sent or another worker holds it.

    A sort of optimistic lock (healthchecks' sendreports): PostgreSQL re-checks the
    WHERE clause after waiting for a concurrent claimer, so exactly one UPDATE matches.
    """
    now = now or timezone.now()
    return bool(
        Alert.objects.filter(_claimable(now), id=alert_id).update(
            state=Alert.State.SENDING,
            claimed_at=now,
            attempts=F("attempts") + 1,
        )
    )


def deliver(alert_id: int, retries: int = 0) -> str:
    """Claim one alert, send its mail, record the outcome; returns what happened.

    A transient failure gives the claim back (state pending) and raises
    delivery.RetryLater while retries are left; after them the next nightly pass finds
    it. A permanent refusal (5xx) is recorded and never retried.
    """
    if not claim(alert_id):
        return "not claimed"
    alert = Alert.objects.get(id=alert_id)
    try:
        delivery.send(alert_message(alert))
    except delivery.SendError as exc:
        permanent = isinstance(exc, delivery.PermanentSendError)
        Alert.objects.filter(id=alert_id, state=Alert.State.SENDING).update(
            state=Alert.State.FAILED if permanent else Alert.State.PENDING,
            claimed_at=None,
            last_error=str(exc),
        )
        if permanent:
            log.error("alert %s: refused: %s", alert_id, exc)
            return "refused"
        countdown = delivery.retry_countdown(retries)
        if countdown is None:
            log.warning(
                "alert %s: %s; retries used up, left for the next nightly pass", alert_id, exc
            )
            return "retries used up"
        log.warning("alert %s: transient send failure, retry in %s s: %s", alert_id, countdown, exc)
        raise delivery.RetryLater(countdown, str(exc)) from None
    Alert.objects.filter(id=alert_id, state=Alert.State.SENDING).update(
        state=Alert.State.SENT,
        sent_at=timezone.now(),
        last_error="",
    )
    log.info("alert %s: sent", alert_id)
    return "sent"


def run_alerts(days: list[dt.date]) -> Counter:
    """Prepare and send inline (the management command); failures stay pending for later."""
    outcomes: Counter = Counter()
    for alert_id in prepare_alerts(days):
        try:
            outcomes[deliver(alert_id)] += 1
        except delivery.RetryLater:  # left pending: the next nightly pass sends it
            outcomes["failed, will retry"] += 1
    return outcomes


def _top(counter: Counter) -> list[tuple[str, int]]:
    return sorted(counter.items(), key=lambda item: (-item[1], item[0]))[:TOP]


def _event_summary(sender: str, day: dt.date) -> dict[str, Counter]:
    """Recipient domains, bounce replies, client IPs and logins of a sender's day.

    One grouped query over the day's events (index day, sender) rather than one per list:
    the alert pass reads each heavy sender's rows once.
    """
    lists = {name: Counter() for name in ("domains", "replies", "client_ips", "logins")}
    rows = (
        Event.objects.filter(day=day, sender=sender)
        .annotate(
            domain=Substr("recipient", StrIndex("recipient", Value("@")) + 1),
            reply=Case(
                When(status=Status.BOUNCED, then="response"),
                default=Value(""),
                output_field=TextField(),
            ),
        )
        .values_list("domain", "reply", "client_ip", "sasl_username")
        .annotate(n=Count("id"))
        .order_by()
    )
    for domain, reply, client_ip, login, n in rows:
        if domain:
            lists["domains"][domain] += n
        if reply:
            lists["replies"][reply_pattern(reply)] += n
        if client_ip:
            lists["client_ips"][client_ip] += n
        if login:
            lists["logins"][login] += n
    return lists


def alert_context(sender: str, day: dt.date) -> dict:
    """Everything the alert mail shows, read now (templates never query)."""
    counts = DailyCounter.objects.filter(sender=sender, day=day).values(
        "total", *COUNTER_FIELDS
    ).first() or dict.fromkeys(("total", *COUNTER_FIELDS), 0)
    lists = _event_summary(sender, day)
    return {
        "sender": sender,
        "day": day,
        "counts": counts,
        "sum_threshold": settings.SMTPLOG_ALERT_SUM_THRESHOLD,
        "bounce_threshold": settings.SMTPLOG_ALERT_BOUNCE_THRESHOLD,
        "top_domains": _top(lists["domains"]),
        "bounce_replies": _top(lists["replies"]),
        "client_ips": _top(lists["client_ips"]),
        "sasl_logins": _top(lists["logins"]),
        "form_url": settings.SITE_URL + "/",
        "contact": settings.SMTPLOG_CONTACT_EMAIL,
    }


def alert_message(alert: Alert):
    return make_message(
        "alert",
        alert.sender,
        alert_context(alert.sender, alert.day),
        ALERT_LANGUAGE,
        headers={"Reply-To": settings.SMTPLOG_CONTACT_EMAIL},
    )

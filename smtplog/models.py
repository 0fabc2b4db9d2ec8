"""The mail-event store.

Shaped for the two questions asked at scale: "one sender over 31 days" (the report:
Event by sender and time) and "every sender of one day" (the nightly alert and
mailstats: DailyCounter by day). Counters are kept in step with events in the same
transaction (smtplog.store), so summaries never scan events.
"""

from __future__ import annotations

from typing import NamedTuple

from django.contrib.postgres.indexes import BrinIndex, HashIndex
from django.db import models
from django.db.models import F, Q
from django.utils.translation import gettext_lazy as _

from smtplog.addresses import NULL_SENDER, normalize_address


class Status(models.TextChoices):
    SENT = "sent", _("sent")
    BOUNCED = "bounced", _("bounced")
    DEFERRED = "deferred", _("deferred")
    EXPIRED = "expired", _("expired")
    AUTH_RCV = "auth_rcv", _("auth_rcv")
    AUTH_BLK = "auth_blk", _("auth_blk")


class Column(NamedTuple):
    """A counter column of DailyCounter and the label printed over it."""

    field: str
    label: str


# The counter columns, the one list every summary prints (the report, mailstats, the
# dashboard, the admin): Sum, their total, comes first, then the six counted statuses in
# this order. The labels are the original service's column names, the same in every
# language.
SUM = Column("total", "Sum")
COUNTERS = (
    Column("auth_blk", "Auth_blk"),
    Column("auth_rcv", "Auth_rcv"),
    Column("bounced", "Bounced"),
    Column("deferred", "Deferred"),
    Column("expired", "Expired"),
    Column("sent", "Sent"),
)
COLUMNS = (SUM, *COUNTERS)
COUNTER_FIELDS = tuple(column.field for column in COUNTERS)
LABELS = {column.field: column.label for column in COLUMNS}


class PlainElsewhere:
    """A PostgreSQL index type that is an ordinary index where there is no such thing (SQLite)."""

    def create_sql(self, model, schema_editor, using="", **kwargs):
        if schema_editor.connection.vendor != "postgresql":
            return models.Index.create_sql(self, model, schema_editor, **kwargs)
        return super().create_sql(model, schema_editor, using=using, **kwargs)


class BlockRangeIndex(PlainElsewhere, BrinIndex):
    """BRIN: a summary per block range, for columns whose rows arrive in order."""


class HashLookupIndex(PlainElsewhere, HashIndex):
    """A hash index: equality only, each entry a 4-byte hash however long the value."""


class Message(models.Model):
    """One life of a queue ID on one relay: from its first line to `removed`.

    Queue IDs are recycled, so the key is (relay, queue ID, first seen). The row also
    holds the in-flight correlation state an ingester needs after a restart.
    """

    relay = models.CharField(_("relay"), max_length=255)
    queue_id = models.CharField(_("queue ID"), max_length=32)
    first_seen = models.DateTimeField(_("first seen"))
    sender = models.CharField(
        _("sender"), max_length=320, blank=True, help_text=_("Empty until qmgr logs from=<...>.")
    )
    client_name = models.CharField(_("client name"), max_length=255, blank=True)
    client_ip = models.GenericIPAddressField(_("client IP"), null=True, blank=True)
    sasl_method = models.CharField(_("SASL method"), max_length=32, blank=True)
    sasl_username = models.CharField(_("SASL user"), max_length=320, blank=True)
    size = models.BigIntegerField(_("size"), null=True, blank=True)
    nrcpt = models.IntegerField(_("recipients"), null=True, blank=True)
    message_id = models.CharField(_("Message-ID"), max_length=255, blank=True)
    # No database constraint on this key and Event.message: the ingester hands out the
    # ids itself, and checking each row at commit cost a sixth of the database's
    # ingestion work. Its index (Meta) holds only re-queued messages: the trace follows
    # the link downwards. The purge deletes an origin without touching its re-queued
    # message (DO_NOTHING), which is seconds younger and goes at the next purge; till
    # then its origin_id leads nowhere, which every reader takes as "no origin".
    origin = models.ForeignKey(
        "self",
        models.DO_NOTHING,
        null=True,
        blank=True,
        related_name="requeued",
        db_constraint=False,
        db_index=False,
        verbose_name=_("before the content filter"),
        help_text=_("The message this one was re-queued from by the content filter."),
    )
    auth_counted = models.BooleanField(default=False, editable=False)
    expired_at = models.DateTimeField(_("expired"), null=True, blank=True)
    removed_at = models.DateTimeField(_("removed"), null=True, blank=True)

    class Meta:
        verbose_name = _("message")
        verbose_name_plural = _("messages")
        constraints = [
            # Queue ID first: it also serves the admin's and the ingester's lookups by
            # queue ID (a separate index on it cost ingestion time for nothing).
            models.UniqueConstraint(
                fields=["queue_id", "relay", "first_seen"], name="message_queue_id_relay_first_seen"
            ),
        ]
        indexes = [
            # Rows arrive in time order: a block-range index answers date ranges (admin,
            # purge) at almost no cost per insert, unlike a B-tree.
            BlockRangeIndex(fields=["first_seen"], name="message_first_seen_brin"),
            # The trace: a message by its Message-ID, and the messages re-queued from one.
            # Equality only, and long values: a hash index is smaller and cheaper to keep
            # than a B-tree. First hops only: a re-queued copy carries the same Message-ID,
            # and indexing it too cost ingestion twice as much (bench/trace.py).
            HashLookupIndex(
                fields=["message_id"],
                name="message_first_hop_message_id",
                condition=~Q(message_id="") & Q(origin__isnull=True),
            ),
            models.Index(
                fields=["origin"], name="message_requeued", condition=Q(origin__isnull=False)
            ),
        ]

    def __str__(self) -> str:
        return f"{self.queue_id}@{self.relay}"


class EventQuerySet(models.QuerySet):
    def for_sender(self, address: str) -> EventQuerySet:
        return self.filter(sender=normalize_address(address))

    def between(self, first_day, last_day) -> EventQuerySet:
        """Events of local days first_day..last_day, both included."""
        return self.filter(day__gte=first_day, day__lte=last_day)

    def counted(self) -> EventQuerySet:
        return self.exclude(sender__in=("", NULL_SENDER))


class Event(models.Model):
    """One counted event: a status line, an accepted SASL submission, a refusal."""

    time = models.DateTimeField(_("time"))
    day = models.DateField(_("day"), help_text=_("Local day of the time, in TIME_ZONE."))
    sender = models.CharField(
        _("sender"),
        max_length=320,
        blank=True,
        help_text=_("Empty while the sender is not known yet; such events are not counted."),
    )
    status = models.CharField(_("status"), max_length=8, choices=Status.choices)
    message = models.ForeignKey(
        Message,
        models.SET_NULL,
        null=True,
        blank=True,
        related_name="events",
        verbose_name=_("message"),
        db_constraint=False,
    )
    relay = models.CharField(_("relay"), max_length=255)
    queue_id = models.CharField(_("queue ID"), max_length=32, blank=True)
    client_ip = models.GenericIPAddressField(_("client IP"), null=True, blank=True)
    sasl_username = models.CharField(_("SASL user"), max_length=320, blank=True)
    recipient = models.CharField(_("recipient"), max_length=320, blank=True)
    next_hop = models.CharField(_("next hop"), max_length=255, blank=True)
    dsn = models.CharField(_("DSN"), max_length=16, blank=True)
    delay = models.FloatField(_("delay (s)"), null=True, blank=True)
    response = models.TextField(_("response"), blank=True)

    objects = EventQuerySet.as_manager()

    class Meta:
        verbose_name = _("event")
        verbose_name_plural = _("events")
        indexes = [
            # The report: one sender's events over a range of days, in time order. The
            # pattern operator class also serves prefix searches (sender LIKE 'alice@%',
            # the trace) whatever the database's collation; equality works as before.
            models.Index(
                fields=["sender", "time"],
                name="event_sender_prefix_time",
                opclasses=["varchar_pattern_ops", "timestamptz_ops"],
            ),
            # Purge and recounts: whole days. Rows arrive in time order, so a block-range
            # index does, at almost no cost per insert (a B-tree on (day, sender) was a
            # seventh of the database's ingestion work). A sender's day: event_sender_time.
            BlockRangeIndex(fields=["day"], name="event_day_brin"),
            models.Index(fields=["queue_id"], name="event_queue_id"),
            models.Index(
                fields=["recipient"],
                name="event_recipient_prefix",
                opclasses=["varchar_pattern_ops"],
            ),
            # The trace: a client's refusals (rejects, SASL failures) near a time; only
            # those rows, a few in a hundred.
            models.Index(
                fields=["client_ip", "time"],
                name="event_refusal_client_time",
                condition=Q(status="auth_blk"),
            ),
            # Unattributed events waiting for their sender or login to become known.
            models.Index(
                fields=["sasl_username"], name="event_pending_login", condition=models.Q(sender="")
            ),
        ]

    def __str__(self) -> str:
        return f"{self.time:%Y-%m-%d %H:%M:%S} {self.status} {self.sender}"


class DailyCounterQuerySet(models.QuerySet):
    def for_sender(self, address: str) -> DailyCounterQuerySet:
        return self.filter(sender=normalize_address(address))


class DailyCounter(models.Model):
    """The report's seven columns (COLUMNS) for one sender and local day."""

    sender = models.CharField(_("sender"), max_length=320)
    day = models.DateField(_("day"))
    auth_blk = models.IntegerField(LABELS["auth_blk"], default=0)
    auth_rcv = models.IntegerField(LABELS["auth_rcv"], default=0)
    bounced = models.IntegerField(LABELS["bounced"], default=0)
    deferred = models.IntegerField(LABELS["deferred"], default=0)
    expired = models.IntegerField(LABELS["expired"], default=0)
    sent = models.IntegerField(LABELS["sent"], default=0)
    total = models.GeneratedField(
        expression=F("auth_blk")
        + F("auth_rcv")
        + F("bounced")
        + F("deferred")
        + F("expired")
        + F("sent"),
        output_field=models.IntegerField(),
        db_persist=True,
        verbose_name=SUM.label,
    )

    objects = DailyCounterQuerySet.as_manager()

    class Meta:
        verbose_name = _("daily counter")
        verbose_name_plural = _("daily counters")
        constraints = [
            models.UniqueConstraint(fields=["sender", "day"], name="dailycounter_sender_day"),
        ]
        indexes = [models.Index(fields=["day", "total"], name="dailycounter_day_total")]

    def __str__(self) -> str:
        return f"{self.day} {self.sender}"


class LoginAlias(models.Model):
    """A bare SASL login seen authenticating as an envelope sender.

    SASL failures under a bare login are attributed to the sender it authenticates as,
    also for failures logged before its first success.
    """

    login = models.CharField(_("login"), max_length=320, unique=True)
    sender = models.CharField(_("sender"), max_length=320)
    last_seen = models.DateTimeField(_("last seen"))

    class Meta:
        verbose_name = _("SASL login")
        verbose_name_plural = _("SASL logins")

    def __str__(self) -> str:
        return f"{self.login} → {self.sender}"


class LogFile(models.Model):
    """An ingested log file, known by a fingerprint of its start, not by its name.

    `position` counts bytes of the decompressed stream consumed so far; it is committed
    in the same transaction as the rows those bytes produced, with `tail`, a hash of the
    end of the last line read: a file whose bytes before the position are no longer
    those (truncated in place, rewritten) is noticed and read from its first new line.
    """

    fingerprint = models.CharField(_("fingerprint"), max_length=64, unique=True)
    path = models.CharField(_("last path"), max_length=1024)
    position = models.BigIntegerField(_("position"), default=0)
    tail = models.CharField(max_length=16, blank=True, editable=False)
    lines = models.BigIntegerField(_("lines read"), default=0)
    year_anchor = models.IntegerField(
        _("year"),
        null=True,
        blank=True,
        help_text=_("Year of the last classic (year-less) timestamp read from this file."),
    )
    last_month = models.IntegerField(null=True, blank=True, editable=False)
    size = models.BigIntegerField(_("size seen"), default=0)
    first_seen = models.DateTimeField(_("first seen"), auto_now_add=True)
    updated = models.DateTimeField(_("updated"), auto_now=True)
    last_line_time = models.DateTimeField(_("last line time"), null=True, blank=True)
    last_error = models.TextField(_("last error"), blank=True)

    class Meta:
        verbose_name = _("log file")
        verbose_name_plural = _("log files")

    def __str__(self) -> str:
        return self.path


class RelayPart(models.Model):
    """One relay's read position in a central log (a file of several relays' lines),
    kept while a worker process of its own reads that relay's lines side by side with
    the others (smtplog.ingest.plan).

    A line of the relay is read when it ends at or before this position; a line of a
    relay without a row here, at or before the file's own position. A row at or behind
    the file's position says nothing more and is deleted.
    """

    logfile = models.ForeignKey(LogFile, models.CASCADE, related_name="parts")
    relay = models.CharField(_("relay"), max_length=255)
    position = models.BigIntegerField(_("position"), default=0)
    lines = models.BigIntegerField(_("lines read"), default=0)
    year_anchor = models.IntegerField(null=True, blank=True)
    last_month = models.IntegerField(null=True, blank=True)
    last_line_time = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = _("relay's part of a log file")
        verbose_name_plural = _("relays' parts of log files")
        constraints = [
            models.UniqueConstraint(fields=["logfile", "relay"], name="relaypart_one_per_relay")
        ]

    def __str__(self) -> str:
        return f"{self.logfile.path}: {self.relay}"


class Heartbeat(models.Model):
    """When a periodic job last ran to its end: what the health check reads.

    "beat" every minute (celery beat and a worker are alive), "ingest" after each
    scheduled ingestion run, "alerts" after each nightly alert pass.
    """

    name = models.CharField(_("job"), max_length=32, primary_key=True)
    at = models.DateTimeField(_("last run"))

    class Meta:
        verbose_name = _("heartbeat")
        verbose_name_plural = _("heartbeats")

    def __str__(self) -> str:
        return f"{self.name} {self.at:%Y-%m-%d %H:%M:%S}"

    @classmethod
    def record(cls, name: str) -> None:
        from django.utils import timezone

        cls.objects.update_or_create(name=name, defaults={"at": timezone.now()})

"""Every report query made through the form (or by staff), for abuse limits and audit."""

from __future__ import annotations

import datetime as dt

from django.db import models
from django.utils.translation import gettext_lazy as _


class QueryQuerySet(models.QuerySet):
    # The abuse limits are counted in SQL of their own, in one statement with the insert
    # they decide on: queries/limits.py.

    def claimable(self, now: dt.datetime) -> QueryQuerySet:
        """Pending queries no worker holds a lease on."""
        return self.filter(outcome=Query.Outcome.PENDING).filter(
            models.Q(claimed_until__isnull=True) | models.Q(claimed_until__lte=now)
        )


class Query(models.Model):
    class Outcome(models.TextChoices):
        PENDING = "pending", _("pending")
        SENT = "sent", _("sent")
        FAILED = "failed", _("failed")
        LIMITED = "limited", _("limited")

    address = models.CharField(_("email address"), max_length=320)
    # The address without its +tag: what the per-address limit counts (limits.mailbox_of).
    mailbox = models.CharField(_("mailbox"), max_length=320, blank=True, editable=False)
    begin = models.DateField(_("begin"))
    end = models.DateField(_("end"))
    client_ip = models.GenericIPAddressField(_("client IP"), null=True, blank=True)
    # The /64 of an IPv6 client or the IPv4 address itself: what the per-IP limit counts.
    client_net = models.CharField(_("client network"), max_length=64, blank=True)
    language = models.CharField(_("language"), max_length=16)
    created = models.DateTimeField(_("asked at"), db_index=True)
    outcome = models.CharField(
        _("outcome"), max_length=8, choices=Outcome.choices, default=Outcome.PENDING
    )
    sent_at = models.DateTimeField(_("sent at"), null=True, blank=True)
    attempts = models.IntegerField(_("attempts"), default=0)
    error = models.TextField(_("last error"), blank=True)
    by_staff = models.BooleanField(_("sent by staff"), default=False)
    # The random token of the form page that asked: a double submit finds the first query.
    form_token = models.CharField(max_length=32, null=True, blank=True, unique=True, editable=False)
    # A worker sending the report holds the row until then (a conditional UPDATE claims it).
    claimed_until = models.DateTimeField(_("claimed until"), null=True, blank=True)
    # When the sweeper last re-enqueued it (its own claim, so two sweepers enqueue once).
    swept_at = models.DateTimeField(_("re-enqueued at"), null=True, blank=True)

    objects = QueryQuerySet.as_manager()

    class Meta:
        verbose_name = _("report query")
        verbose_name_plural = _("report queries")
        indexes = [
            models.Index(fields=["mailbox", "created"], name="query_mailbox_created"),
            models.Index(fields=["client_net", "created"], name="query_net_created"),
            models.Index(fields=["outcome", "created"], name="query_outcome_created"),
        ]

    def __str__(self) -> str:
        return f"{self.address} {self.begin}–{self.end}"


class ClientHits(models.Model):
    """Requests of one kind from one client network in one time window (queries/throttle.py)."""

    key = models.CharField(max_length=96)
    window = models.DateTimeField()
    hits = models.IntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["key", "window"], name="clienthits_key_window"),
        ]
        indexes = [models.Index(fields=["window"], name="clienthits_window")]

    def __str__(self) -> str:
        return f"{self.key} {self.window}: {self.hits}"

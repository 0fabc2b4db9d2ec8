"""Every report query made through the form (or by staff), for abuse limits and audit."""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _


class Query(models.Model):
    class Outcome(models.TextChoices):
        PENDING = "pending", _("pending")
        SENT = "sent", _("sent")
        FAILED = "failed", _("failed")
        LIMITED = "limited", _("limited")

    address = models.CharField(_("email address"), max_length=320)
    begin = models.DateField(_("begin"))
    end = models.DateField(_("end"))
    client_ip = models.GenericIPAddressField(_("client IP"), null=True, blank=True)
    # The /64 of an IPv6 client or the IPv4 address itself: what the per-IP limit counts.
    client_net = models.CharField(_("client network"), max_length=64, blank=True)
    language = models.CharField(_("language"), max_length=16)
    created = models.DateTimeField(_("asked at"), db_index=True)
    outcome = models.CharField(_("outcome"), max_length=8, choices=Outcome.choices,
                               default=Outcome.PENDING)
    sent_at = models.DateTimeField(_("sent at"), null=True, blank=True)
    attempts = models.IntegerField(_("attempts"), default=0)
    error = models.TextField(_("last error"), blank=True)
    by_staff = models.BooleanField(_("sent by staff"), default=False)

    class Meta:
        verbose_name = _("report query")
        verbose_name_plural = _("report queries")
        indexes = [
            models.Index(fields=["address", "created"], name="query_address_created"),
            models.Index(fields=["client_net", "created"], name="query_net_created"),
            models.Index(fields=["outcome", "created"], name="query_outcome_created"),
        ]

    def __str__(self) -> str:
        return f"{self.address} {self.begin}–{self.end}"

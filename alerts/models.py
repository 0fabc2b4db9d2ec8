"""One nightly alert per sender and local day, recorded before its mail is sent."""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _


class Alert(models.Model):
    """The unique (sender, day) row is what makes the alert happen at most once.

    It is inserted before any mail goes out; a worker then claims it with a conditional
    UPDATE (pending -> sending) and only the claimer sends. A failed send puts it back
    to pending so a retry, or the next night's catch-up, can claim it again.
    """

    class State(models.TextChoices):
        PENDING = "pending", _("pending")
        SENDING = "sending", _("sending")
        SENT = "sent", _("sent")
        FAILED = "failed", _("failed")  # refused for good by the mail server: not retried

    sender = models.CharField(_("sender"), max_length=320)
    day = models.DateField(_("day"))
    # The figures that triggered it, as they stood when the row was created.
    total = models.IntegerField(_("Sum"))
    bounced = models.IntegerField(_("Bounced"))
    state = models.CharField(_("state"), max_length=8, choices=State.choices, default=State.PENDING)
    attempts = models.IntegerField(_("attempts"), default=0)
    created = models.DateTimeField(_("created"), db_index=True)
    claimed_at = models.DateTimeField(_("claimed at"), null=True, blank=True)
    sent_at = models.DateTimeField(_("sent at"), null=True, blank=True)
    last_error = models.TextField(_("last error"), blank=True)

    class Meta:
        verbose_name = _("alert")
        verbose_name_plural = _("alerts")
        constraints = [
            models.UniqueConstraint(fields=["sender", "day"], name="alert_sender_day"),
        ]
        indexes = [models.Index(fields=["state", "day"], name="alert_state_day")]

    def __str__(self) -> str:
        return f"{self.day} {self.sender}"

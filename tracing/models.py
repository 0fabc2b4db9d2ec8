"""The audit of the message trace: every look at someone's mail records is itself recorded."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class Look(models.Model):
    """One trace search, CSV export, message page or command-line trace, by whom and from where.

    Kept as long as the mail records themselves (smtplog.retention purges both).
    """

    class Kind(models.TextChoices):
        SEARCH = "search", _("search")
        EXPORT = "export", _("CSV export")
        MESSAGE = "message", _("message page")
        COMMAND = "command", _("command line")

    time = models.DateTimeField(_("time"), default=timezone.now, db_index=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("user"),
    )
    # The name as it was: kept when the account is deleted; the system user's name for
    # the command line, which has no web account.
    username = models.CharField(_("username"), max_length=150)
    # Of the staff member who looked (not of an SMTP client).
    client_ip = models.GenericIPAddressField(_("client IP"), null=True, blank=True)
    kind = models.CharField(_("kind"), max_length=8, choices=Kind.choices)
    criteria = models.JSONField(
        _("what was looked at"), default=dict, help_text=_("The search fields, or the message.")
    )
    results = models.IntegerField(_("results"))

    class Meta:
        verbose_name = _("trace audit entry")
        verbose_name_plural = _("trace audit")

    def __str__(self) -> str:
        return f"{self.time:%Y-%m-%d %H:%M:%S} {self.username} {self.kind}"

"""Staff view of the alerts: read-only."""

from __future__ import annotations

from django.contrib import admin
from django.utils.translation import gettext_lazy as _

from alerts.models import Alert
from smtplog.admin import ReadOnlyAdmin


@admin.register(Alert)
class AlertAdmin(ReadOnlyAdmin):
    list_display = (
        "day",
        "sender",
        "total",
        "bounced",
        "state",
        "attempts",
        "sent_at",
        "last_error",
    )
    list_filter = ("state", "day")
    search_prefix = ("sender",)
    search_help_text = _("The start of a sender address (“grace” finds grace.tseng@…).")
    date_hierarchy = "day"
    ordering = ("-day", "-total")

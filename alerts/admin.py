"""Staff view of the alerts: read-only."""

from __future__ import annotations

from django.contrib import admin

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
    search_fields = ("=sender",)
    date_hierarchy = "day"
    ordering = ("-day", "-total")

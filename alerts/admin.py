"""Staff views of the alerts, and the dashboard (per-day totals, top senders, ingestion)."""

from __future__ import annotations

from django.contrib import admin
from django.template.response import TemplateResponse
from django.urls import path
from django.utils.translation import gettext_lazy as _

from alerts import dashboard
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


def dashboard_view(request):
    context = {**admin.site.each_context(request), "title": _("Dashboard"), **dashboard.context()}
    return TemplateResponse(request, "admin/alerts/dashboard.html", context)


# The dashboard is a page of the admin site itself (/admin/dashboard/), behind its staff
# login; the index template adds a link to it above the app list.
_site_urls = admin.site.get_urls


def _get_urls():
    return [
        path("dashboard/", admin.site.admin_view(dashboard_view), name="dashboard"),
        *_site_urls(),
    ]


admin.site.get_urls = _get_urls
admin.site.index_template = "admin/alerts/index.html"

"""The trace audit in the admin: superusers read it; nobody else sees it, nobody edits it."""

from __future__ import annotations

from django.contrib import admin
from django.utils.translation import gettext_lazy as _

from smtplog.admin import ReadOnlyAdmin
from tracing.models import Look


@admin.register(Look)
class LookAdmin(ReadOnlyAdmin):
    list_display = ("time", "username", "client_ip", "kind", "what", "results")
    list_filter = ("kind",)
    search_fields = ("=username", "=client_ip")
    date_hierarchy = "time"
    ordering = ("-time",)

    @admin.display(description=_("what was looked at"))
    def what(self, obj: Look) -> str:
        return ", ".join(f"{name}={value}" for name, value in obj.criteria.items())

    # Who looked at whose mail is itself private: superusers only, whatever the
    # permissions a staff account was given.
    def has_module_permission(self, request) -> bool:
        return request.user.is_active and request.user.is_superuser

    def has_view_permission(self, request, obj=None) -> bool:
        return request.user.is_active and request.user.is_superuser

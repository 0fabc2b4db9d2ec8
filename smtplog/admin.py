"""Staff views of the log data: read-only, searchable, and cheap on big tables."""

from __future__ import annotations

from django.contrib import admin
from django.core.paginator import Paginator
from django.utils.functional import cached_property
from django.utils.translation import gettext_lazy as _

from smtplog.models import DailyCounter, Event, LogFile, LoginAlias, Message


class CappedCountPaginator(Paginator):
    """Counts at most CAP rows (a LIMITed subquery), never the whole table."""

    CAP = 10_000

    @cached_property
    def count(self) -> int:
        return self.object_list[: self.CAP + 1].count()


class ReadOnlyAdmin(admin.ModelAdmin):
    """Log data is evidence: staff look, nobody edits."""

    paginator = CappedCountPaginator
    show_full_result_count = False
    list_per_page = 100

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Message)
class MessageAdmin(ReadOnlyAdmin):
    list_display = (
        "first_seen",
        "relay",
        "queue_id",
        "sender",
        "client_ip",
        "sasl_username",
        "nrcpt",
        "removed_at",
    )
    list_filter = ("relay",)
    search_fields = ("=sender", "=queue_id", "=message_id", "=sasl_username")
    date_hierarchy = "first_seen"
    list_select_related = ("origin",)
    raw_id_fields = ("origin",)


@admin.register(Event)
class EventAdmin(ReadOnlyAdmin):
    list_display = (
        "time",
        "status",
        "sender",
        "recipient",
        "relay",
        "queue_id",
        "client_ip",
        "dsn",
        "short_response",
    )
    list_filter = ("status", "relay", "day")
    search_fields = ("=sender", "=recipient", "=queue_id")
    date_hierarchy = "day"
    list_select_related = ("message",)
    raw_id_fields = ("message",)

    @admin.display(description=_("response"))
    def short_response(self, obj: Event) -> str:
        return obj.response if len(obj.response) <= 80 else obj.response[:79] + "…"


@admin.register(DailyCounter)
class DailyCounterAdmin(ReadOnlyAdmin):
    list_display = (
        "day",
        "sender",
        "total",
        "auth_blk",
        "auth_rcv",
        "bounced",
        "deferred",
        "expired",
        "sent",
    )
    list_filter = ("day",)
    search_fields = ("=sender",)
    date_hierarchy = "day"
    ordering = ("-day", "-total")


@admin.register(LoginAlias)
class LoginAliasAdmin(ReadOnlyAdmin):
    list_display = ("login", "sender", "last_seen")
    search_fields = ("=login", "=sender")


@admin.register(LogFile)
class LogFileAdmin(ReadOnlyAdmin):
    list_display = ("path", "position", "size", "lines", "last_line_time", "updated", "last_error")
    search_fields = ("path",)

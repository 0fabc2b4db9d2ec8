"""Staff view of the queries made: read-only, plus an action to email a report again."""

from __future__ import annotations

from django.contrib import admin, messages
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from queries.models import Query
from queries.tasks import send_report
from smtplog.admin import ReadOnlyAdmin, local_time
from smtplog.retention import retention_window


@admin.register(Query)
class QueryAdmin(ReadOnlyAdmin):
    # What a person scans the queries for; language, attempts, the send time and the last
    # error are on each query's page.
    list_display = ("asked", "address", "days", "outcome", "client_ip", "by_staff")
    list_filter = ("outcome", "language", "by_staff")
    search_prefix = ("address",)
    search_exact = ("client_ip",)
    search_help_text = _(
        "Each word: the start of an email address (“grace” finds grace.tseng@…), or a whole "
        "client IP address."
    )
    date_hierarchy = "created"
    actions = ["email_report"]

    @admin.display(description=_("asked at"), ordering="created")
    def asked(self, query: Query) -> str:
        return local_time(query.created)

    @admin.display(description=_("days"), ordering="begin")
    def days(self, query: Query) -> str:
        if query.begin == query.end:
            return query.begin.isoformat()
        return f"{query.begin.isoformat()} – {query.end.isoformat()}"

    @admin.action(description=_("Email a report to the owner of each selected address"))
    def email_report(self, request, queryset) -> None:
        """A new staff query per selected address, for the same days (within retention)."""
        first, last = retention_window()
        created = []
        with transaction.atomic():
            for query in queryset.order_by("id"):
                begin, end = max(query.begin, first), min(query.end, last)
                if begin > end:
                    begin, end = first, last
                new = Query.objects.create(
                    address=query.address,
                    begin=begin,
                    end=end,
                    client_ip=None,
                    language=query.language,
                    created=timezone.now(),
                    by_staff=True,
                )
                send_report.delay_on_commit(new.id)
                created.append(new.id)
        self.message_user(
            request,
            ngettext(
                "%(count)d report queued; it goes only to the address it describes.",
                "%(count)d reports queued; each goes only to the address it describes.",
                len(created),
            )
            % {"count": len(created)},
            messages.SUCCESS,
        )

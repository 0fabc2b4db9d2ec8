"""Staff views of the log data: read-only, searchable through indexes, cheap on big tables."""

from __future__ import annotations

import json

from django.contrib import admin
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.db import connections
from django.db.models import Q
from django.utils import dateformat, timezone
from django.utils.functional import cached_property
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from smtplog.models import COLUMNS, DailyCounter, Event, LogFile, LoginAlias, Message


class EstimatedCountPaginator(Paginator):
    """The true count when counting is cheap; past CAP rows, PostgreSQL's estimate.

    Up to CAP rows a LIMITed subquery counts them exactly and stops there. Past it, on
    PostgreSQL, the count is the planner's row estimate for the same filtered query
    (EXPLAIN reads no rows, only the table's statistics) and `estimated` is set, so the
    page says "about". An estimate of CAP rows or fewer contradicts the count just made
    (statistics not gathered yet): then `count` is CAP + 1 and `over_cap` is set, so the
    page says "more than". Elsewhere (SQLite: a laptop's data) the true count.
    """

    CAP = 10_000
    estimated = False
    over_cap = False

    @cached_property
    def count(self) -> int:
        counted = self.object_list[: self.CAP + 1].count()
        if counted <= self.CAP:
            return counted
        estimate = planner_estimate(self.object_list)
        if estimate is None:
            return self.object_list.count()
        if estimate <= self.CAP:
            self.over_cap = True
            return counted
        self.estimated = True
        return estimate


def planner_estimate(queryset) -> int | None:
    """PostgreSQL's estimate of the rows the query returns (from its statistics), or None."""
    if connections[queryset.db].vendor != "postgresql":
        return None
    plan = json.loads(queryset.explain(format="json"))
    return int(plan[0]["Plan"]["Plan Rows"])


def local_time(value) -> str:
    """A time as lists show it: compact, to the second, in TIME_ZONE."""
    return dateformat.format(timezone.localtime(value), "Y-m-d H:i:s") if value else "-"


class RelayFilter(admin.SimpleListFilter):
    """Filter by relay, offering the relays of the latest events.

    Django's filter by a field's values reads the whole column (DISTINCT over every row,
    seconds on ten million events, at each page); the newest RELAY_SAMPLE events come
    from the primary key's index in milliseconds and name every relay that is logging.
    """

    title = _("relay")
    parameter_name = "relay"
    RELAY_SAMPLE = 10_000

    def lookups(self, request, model_admin):
        latest = Event.objects.order_by("-pk").values_list("relay", flat=True)
        return [(relay, relay) for relay in sorted(set(latest[: self.RELAY_SAMPLE]))]

    def queryset(self, request, queryset):
        if self.value():
            return queryset.filter(relay=self.value())
        return queryset


class ReadOnlyAdmin(admin.ModelAdmin):
    """Log data is evidence: staff look, nobody edits.

    Search: every word typed must match one of the fields named in `search_prefix` (the
    field starts with the word, as typed or in lower case: addresses are mostly stored in
    lower case) or in `search_exact` (the whole value, as typed). Only fields an index
    serves that way, on the big tables; `search_help_text` says what a word matches.
    """

    paginator = EstimatedCountPaginator
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER  # a count per filter choice: whole-table counts
    list_per_page = 100
    search_prefix: tuple[str, ...] = ()
    search_exact: tuple[str, ...] = ()

    class Media:
        css = {"all": ["smtplog/admin-lists.css"]}

    def get_search_fields(self, request):
        return (*self.search_prefix, *self.search_exact) or super().get_search_fields(request)

    def get_search_results(self, request, queryset, search_term):
        if not (self.search_prefix or self.search_exact):
            return super().get_search_results(request, queryset, search_term)
        for word in search_term.split():
            match = Q(pk__in=[])  # a word no field can hold matches nothing
            for name in self.search_prefix:
                for prefix in {word, word.lower()}:
                    if self._may_hold(name, prefix):
                        match |= Q(**{f"{name}__startswith": prefix})
            for name in self.search_exact:
                if self._may_hold(name, word):
                    match |= Q(**{name: word})
            queryset = queryset.filter(match)
        return queryset, False

    def _may_hold(self, name: str, value: str) -> bool:
        """Whether the field could hold the value (a word is no IP address, or too long)."""
        field = self.model._meta.get_field(name)
        try:
            field.run_validators(field.to_python(value))
        except ValidationError:
            return False
        return True

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Message)
class MessageAdmin(ReadOnlyAdmin):
    # Client, login, size and Message-ID are on each message's page.
    list_display = ("when", "relay", "queue_id", "sender", "nrcpt", "removed")
    list_filter = (RelayFilter, ("first_seen", admin.DateFieldListFilter))
    # Messages have no index by sender: a sender's or recipient's mail is found in events.
    search_exact = ("queue_id", "message_id")
    search_help_text = _(
        "A whole queue ID or Message-ID. To find a sender's or a recipient's mail, search "
        "the events."
    )
    raw_id_fields = ("origin",)

    @admin.display(description=_("first seen"), ordering="first_seen")
    def when(self, obj: Message) -> str:
        return local_time(obj.first_seen)

    @admin.display(description=_("removed"), ordering="removed_at")
    def removed(self, obj: Message) -> str:
        return local_time(obj.removed_at)


@admin.register(Event)
class EventAdmin(ReadOnlyAdmin):
    # What a person scans a list of events for; relay, queue ID, client, DSN, delay and
    # the whole reply are on each event's page.
    list_display = ("when", "status", "sender", "recipient", "short_response")
    list_filter = ("status", RelayFilter, ("day", admin.DateFieldListFilter))
    search_prefix = ("sender", "recipient")
    search_exact = ("queue_id",)
    search_help_text = _(
        "Each word: the start of a sender or recipient address (“grace” finds "
        "grace.tseng@math.nthu.edu.tw), or a whole queue ID."
    )
    raw_id_fields = ("message",)

    @admin.display(description=_("time"), ordering="time")
    def when(self, obj: Event) -> str:
        return local_time(obj.time)

    @admin.display(description=_("response"))
    def short_response(self, obj: Event) -> str:
        return format_html('<span class="reply" title="{}">{}</span>', obj.response, obj.response)


@admin.register(DailyCounter)
class DailyCounterAdmin(ReadOnlyAdmin):
    list_display = ("day", "sender", *(column.field for column in COLUMNS))
    list_filter = ("day",)
    search_prefix = ("sender",)
    search_help_text = _("The start of a sender address (“grace” finds grace.tseng@…).")
    date_hierarchy = "day"
    ordering = ("-day", "-total")


@admin.register(LoginAlias)
class LoginAliasAdmin(ReadOnlyAdmin):
    list_display = ("login", "sender", "last_seen")
    search_prefix = ("login", "sender")
    search_help_text = _("The start of a SASL login or of a sender address.")


@admin.register(LogFile)
class LogFileAdmin(ReadOnlyAdmin):
    list_display = ("path", "position", "size", "lines", "last_line_time", "updated", "last_error")
    search_fields = ("path",)
    search_help_text = _("Any part of the file's path.")

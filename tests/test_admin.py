"""The staff admin: every list opens, search and filters work, log data is read-only."""

from __future__ import annotations

import pytest
from django.contrib import admin
from django.contrib.auth.models import Permission
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils.html import escape

from alerts.models import Alert
from queries.models import Query
from smtplog.admin import EstimatedCountPaginator, ReadOnlyAdmin, RelayFilter
from smtplog.models import DailyCounter, Event, LogFile, LoginAlias, Message, Status
from smtplog.store import add_events
from tests.conftest import NOW, make_event
from tests.services import require_postgres, uses_postgres

pytestmark = pytest.mark.django_db

LOG_MODELS = [Message, Event, DailyCounter, LoginAlias, LogFile]


def changelist(model) -> str:
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")


@pytest.fixture
def log_rows(mail_events) -> dict:
    """One row of every log model, so change and delete pages have an object."""
    LoginAlias.objects.create(
        login="alice", sender="alice@cs.nthu.edu.tw", last_seen=mail_events[0].time
    )
    LogFile.objects.create(fingerprint="f" * 64, path="/var/log/mail.log", position=1234)
    return {model: model.objects.order_by("pk").first() for model in LOG_MODELS}


@pytest.fixture
def staff_client(client, django_user_model):
    """A staff member (not a superuser) allowed to view the log data, as staff will be."""
    user = django_user_model.objects.create_user("opr", password="pw", is_staff=True)
    codenames = [f"view_{model._meta.model_name}" for model in LOG_MODELS]
    user.user_permissions.set(Permission.objects.filter(codename__in=codenames))
    client.force_login(user)
    return client


def test_staff_see_the_list_of_every_registered_model(admin_client, log_rows):
    registered = list(admin.site._registry)
    assert set(LOG_MODELS) <= set(registered)
    for model in registered:
        response = admin_client.get(changelist(model))
        assert response.status_code == 200, f"{model.__name__}: {response.status_code}"


@pytest.mark.parametrize("model", LOG_MODELS, ids=lambda m: m.__name__)
def test_staff_with_view_permission_see_the_log_lists(staff_client, log_rows, model):
    response = staff_client.get(changelist(model))
    assert response.status_code == 200
    assert response.context["cl"].result_count == model.objects.count()


def test_the_admin_says_what_the_site_is(admin_client):
    response = admin_client.get(reverse("admin:index"))
    assert "SMTP Log Query System" in response.content.decode()


@pytest.mark.parametrize("model", LOG_MODELS, ids=lambda m: m.__name__)
def test_anonymous_users_are_sent_to_the_login_page(client, model):
    url = changelist(model)
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"] == f"{reverse('admin:login')}?next={url}"


def results(response) -> list:
    return list(response.context["cl"].result_list)


class TestSearchAndFilters:
    def test_events_are_found_by_sender(self, admin_client, mail_events):
        response = admin_client.get(changelist(Event), {"q": "bob@ee.nthu.edu.tw"})
        assert [e.sender for e in results(response)] == ["bob@ee.nthu.edu.tw"]

    def test_events_are_found_by_recipient(self, admin_client, mail_events):
        response = admin_client.get(changelist(Event), {"q": "dave@example.org"})
        assert sorted(e.status for e in results(response)) == ["bounced", "deferred"]

    def test_events_and_messages_are_found_by_queue_id(self, admin_client, mail_events):
        response = admin_client.get(changelist(Event), {"q": "5BB1"})
        assert [e.sender for e in results(response)] == ["bob@ee.nthu.edu.tw"]
        response = admin_client.get(changelist(Message), {"q": "4AA091855DA0"})
        assert len(results(response)) == 1

    def test_events_filter_by_status_relay_and_day(self, admin_client, mail_events):
        day = mail_events[0].day
        response = admin_client.get(changelist(Event), {"status__exact": "bounced"})
        assert [e.recipient for e in results(response)] == ["dave@example.org"]
        response = admin_client.get(changelist(Event), {"relay": "smtp1"})
        assert len(results(response)) == 5
        response = admin_client.get(changelist(Event), {"relay": "smtp9"})
        assert results(response) == []
        response = admin_client.get(
            changelist(Event), {"day__year": day.year, "day__month": day.month, "day__day": day.day}
        )
        assert len(results(response)) == 5

    def test_daily_counters_are_found_by_sender_and_day(self, admin_client, mail_events):
        day = mail_events[0].day
        response = admin_client.get(
            changelist(DailyCounter), {"q": "alice@cs.nthu.edu.tw", "day__gte": day.isoformat()}
        )
        [counter] = results(response)
        assert (counter.sender, counter.total) == ("alice@cs.nthu.edu.tw", 4)


class TestReadOnly:
    @pytest.mark.parametrize("model", LOG_MODELS, ids=lambda m: m.__name__)
    def test_the_log_lists_offer_no_add_link_and_no_delete_action(
        self, admin_client, log_rows, model
    ):
        assert isinstance(admin.site._registry[model], ReadOnlyAdmin)
        response = admin_client.get(changelist(model))
        assert response.context["has_add_permission"] is False
        assert response.context["action_form"] is None  # no action left: no delete_selected
        content = response.content.decode()
        assert reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_add") not in content

    @pytest.mark.parametrize("model", LOG_MODELS, ids=lambda m: m.__name__)
    def test_adding_changing_and_deleting_are_refused(self, admin_client, log_rows, model):
        obj = log_rows[model]
        name = f"admin:{model._meta.app_label}_{model._meta.model_name}"
        assert admin_client.get(reverse(f"{name}_add")).status_code == 403
        assert admin_client.post(reverse(f"{name}_add"), {}).status_code == 403
        assert admin_client.post(reverse(f"{name}_change", args=[obj.pk]), {}).status_code == 403
        assert admin_client.get(reverse(f"{name}_delete", args=[obj.pk])).status_code == 403
        assert (
            admin_client.post(reverse(f"{name}_delete", args=[obj.pk]), {"post": "yes"}).status_code
            == 403
        )
        assert model.objects.filter(pk=obj.pk).exists()

    def test_the_delete_action_is_refused_when_posted_anyway(self, admin_client, mail_events):
        ids = [str(e.pk) for e in mail_events]
        response = admin_client.post(
            changelist(Event), {"action": "delete_selected", "_selected_action": ids, "post": "yes"}
        )
        assert response.status_code < 500
        assert Event.objects.count() == len(mail_events)

    def test_the_change_page_shows_an_event_read_only(self, admin_client, mail_events):
        event = mail_events[0]
        response = admin_client.get(reverse("admin:smtplog_event_change", args=[event.pk]))
        assert response.status_code == 200
        assert response.context["has_change_permission"] is False
        assert 'name="_save"' not in response.content.decode()


class TestCounts:
    @pytest.mark.parametrize("model", LOG_MODELS, ids=lambda m: m.__name__)
    def test_the_list_never_counts_the_whole_table(self, admin_client, log_rows, model):
        with CaptureQueriesContext(connection) as queries:
            response = admin_client.get(changelist(model))
        assert response.status_code == 200
        counts = [q["sql"] for q in queries.captured_queries if "COUNT(" in q["sql"].upper()]
        assert counts, "the paginator made no count at all"
        unbounded = [sql for sql in counts if "LIMIT" not in sql.upper()]
        assert unbounded == []

    def test_a_search_never_counts_the_whole_table_either(self, admin_client, mail_events):
        with CaptureQueriesContext(connection) as queries:
            admin_client.get(changelist(Event), {"q": "alice@cs.nthu.edu.tw"})
        counts = [q["sql"] for q in queries.captured_queries if "COUNT(" in q["sql"].upper()]
        assert counts
        assert all("LIMIT" in sql.upper() for sql in counts)

    def test_up_to_its_cap_the_count_is_exact_and_says_so(self, admin_client, mail_events):
        paginator = EstimatedCountPaginator(Event.objects.order_by("pk"), 100)
        assert (paginator.count, paginator.estimated, paginator.over_cap) == (5, False, False)
        page = admin_client.get(changelist(Event)).content.decode()
        assert "5 events" in page and "about" not in page and "more than" not in page

    def test_past_its_cap_sqlite_counts_them_all(self, mail_events, monkeypatch):
        if uses_postgres():
            pytest.skip("the SQLite path")
        monkeypatch.setattr(EstimatedCountPaginator, "CAP", 2)
        paginator = EstimatedCountPaginator(Event.objects.order_by("pk"), 100)
        assert (paginator.count, paginator.estimated, paginator.over_cap) == (5, False, False)

    def test_past_its_cap_postgresql_gives_its_estimate_marked_as_such(
        self, admin_client, mail_events, monkeypatch
    ):
        require_postgres()
        analyze("smtplog_event")
        monkeypatch.setattr(EstimatedCountPaginator, "CAP", 2)
        with CaptureQueriesContext(connection) as queries:
            paginator = EstimatedCountPaginator(Event.objects.order_by("pk"), 100)
            count = paginator.count
        assert (count, paginator.estimated) == (5, True)  # the statistics know 5 rows
        assert queries.captured_queries[-1]["sql"].startswith("EXPLAIN")

        page = admin_client.get(changelist(Event)).content.decode()
        assert "about 5 events (PostgreSQL's estimate: past 2 rows" in page
        assert "about 5 results (an estimate)" in page  # beside the search box

    def test_an_estimate_below_the_cap_says_more_than_the_cap(
        self, admin_client, mail_events, monkeypatch
    ):
        require_postgres()
        analyze("smtplog_event")  # before these events: the statistics know none of them
        late = [make_event("zed@nthu.edu.tw", Status.SENT, NOW) for _ in range(4)]
        add_events(late)
        monkeypatch.setattr(EstimatedCountPaginator, "CAP", 2)

        zeds = Event.objects.filter(sender="zed@nthu.edu.tw").order_by("pk")
        paginator = EstimatedCountPaginator(zeds, 100)
        assert (paginator.count, paginator.over_cap, paginator.estimated) == (3, True, False)
        page = admin_client.get(changelist(Event), {"q": "zed@"}).content.decode()
        assert "more than 2 events" in page and "more than 2 results" in page


class TestNoWholeTableReads:
    @pytest.mark.parametrize("model", [Event, Message], ids=lambda m: m.__name__)
    def test_the_big_lists_read_no_column_whole(self, admin_client, log_rows, model):
        """No DISTINCT over every row for a filter, no MIN/MAX for a date hierarchy."""
        with CaptureQueriesContext(connection) as queries:
            response = admin_client.get(changelist(model))
        assert response.status_code == 200
        for query in queries.captured_queries:
            sql = query["sql"].upper()
            assert "DISTINCT" not in sql and "MIN(" not in sql and "MAX(" not in sql, sql
        assert "Show counts" not in response.content.decode()  # facets: counts per choice

    def test_the_relay_filter_offers_the_relays_of_the_latest_events(
        self, admin_client, mail_events, monkeypatch
    ):
        add_events([make_event("zed@nthu.edu.tw", Status.SENT, NOW, relay="smtp2")])
        response = admin_client.get(changelist(Event))
        [relays] = [f for f in response.context["cl"].filter_specs if f.title == "relay"]
        assert [choice["display"] for choice in relays.choices(response.context["cl"])] == [
            "All",
            "smtp1",
            "smtp2",
        ]
        monkeypatch.setattr(RelayFilter, "RELAY_SAMPLE", 1)  # the newest event only
        response = admin_client.get(changelist(Message))
        [relays] = [f for f in response.context["cl"].filter_specs if f.title == "relay"]
        assert [c["display"] for c in relays.choices(response.context["cl"])] == ["All", "smtp2"]
        # A relay not offered still filters.
        response = admin_client.get(changelist(Event), {"relay": "smtp1"})
        assert len(results(response)) == 5


def analyze(table: str) -> None:
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {table}")


class TestPrefixSearch:
    def test_the_start_of_an_address_finds_its_events_in_any_case(self, admin_client, mail_events):
        for word in ("ali", "Alice@CS", "alice@cs.nthu.edu.tw"):
            response = admin_client.get(changelist(Event), {"q": word})
            assert {e.sender for e in results(response)} == {"alice@cs.nthu.edu.tw"}, word

    def test_the_start_of_a_recipient_finds_its_events(self, admin_client, mail_events):
        response = admin_client.get(changelist(Event), {"q": "dave@"})
        assert sorted(e.status for e in results(response)) == ["bounced", "deferred"]

    def test_every_word_must_match(self, admin_client, mail_events):
        response = admin_client.get(changelist(Event), {"q": "alice dave"})
        assert sorted(e.status for e in results(response)) == ["bounced", "deferred"]
        assert results(admin_client.get(changelist(Event), {"q": "alice bob"})) == []

    def test_a_queue_id_matches_whole_and_as_typed(self, admin_client, mail_events):
        assert results(admin_client.get(changelist(Event), {"q": "5BB"})) == []
        assert results(admin_client.get(changelist(Event), {"q": "5bb1"})) == []

    def test_the_middle_of_an_address_finds_nothing(self, admin_client, mail_events):
        assert results(admin_client.get(changelist(Event), {"q": "cs.nthu"})) == []

    def test_a_word_that_is_no_ip_address_is_no_error_on_an_ip_field(self, admin_client):
        Query.objects.create(
            address="grace.tseng@math.nthu.edu.tw",
            begin=NOW.date(),
            end=NOW.date(),
            client_ip="2001:288:1001::1",
            language="en",
            created=NOW,
        )
        for word, found in (("grace", 1), ("2001:288:1001::1", 1), ("2001:288", 0), ("x", 0)):
            response = admin_client.get("/admin/queries/query/", {"q": word})
            assert response.status_code == 200
            assert len(results(response)) == found, word

    @pytest.mark.parametrize("model", [*LOG_MODELS, Query, Alert], ids=lambda m: m.__name__)
    def test_the_search_box_says_what_it_matches(self, admin_client, model):
        response = admin_client.get(changelist(model))
        help_text = response.context["cl"].search_help_text
        assert help_text
        assert f'id="searchbar_helptext">{escape(help_text)}</div>' in response.content.decode()

    @pytest.mark.parametrize(
        ("word", "index"),
        [
            ("grace", "event_sender_prefix_time"),
            ("4AA091855DA0", "event_queue_id"),
        ],
    )
    def test_on_postgresql_an_index_serves_each_field_searched(self, mail_events, word, index):
        """With sequential scans priced out, a plan without the index means none can serve."""
        require_postgres()
        model_admin = admin.site._registry[Event]
        queryset, _ = model_admin.get_search_results(None, Event.objects.all(), word)
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL enable_seqscan = off")
            plan = queryset.explain()
        assert index in plan
        assert "event_recipient_prefix" in plan  # the recipient's side of the OR
        assert "Seq Scan" not in plan

"""The staff admin: every list opens, search and filters work, log data is read-only."""

from __future__ import annotations

import pytest
from django.contrib import admin
from django.contrib.auth.models import Permission
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from smtplog.admin import CappedCountPaginator, ReadOnlyAdmin
from smtplog.models import DailyCounter, Event, LogFile, LoginAlias, Message

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


class TestCappedCount:
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

    def test_the_paginator_counts_at_most_one_past_its_cap(self, mail_events, monkeypatch):
        monkeypatch.setattr(CappedCountPaginator, "CAP", 2)
        paginator = CappedCountPaginator(Event.objects.order_by("pk"), 100)
        assert Event.objects.count() == 5
        assert paginator.count == 3

"""The staff pages of the trace: who may see them, what they show, and the audit they leave."""

from __future__ import annotations

import csv
import datetime as dt
import io

import pytest
from django.contrib.auth.models import Permission
from django.test import Client
from django.urls import reverse

from smtplog.models import Event, Message, Status
from tests.conftest import NOW
from tracing.models import Look

SEARCH = reverse("tracing:search")


def message_url(message) -> str:
    return reverse("tracing:message", args=[message.pk])


class TestAccess:
    @pytest.mark.parametrize(
        "url",
        [
            SEARCH,
            reverse("tracing:export"),
            "/admin/trace/message/1/",
            "/admin/trace/message/1/json/",
        ],
    )
    def test_anonymous_users_are_sent_to_the_login_page(self, client, db, url):
        response = client.get(url, {"sender": "alice@"} if "message" not in url else {})
        assert response.status_code == 302
        assert response["Location"].startswith(f"{reverse('admin:login')}?next={url}")
        assert not Look.objects.exists()

    def test_users_who_are_not_staff_are_refused_and_told_why(
        self, client, django_user_model, morning
    ):
        user = django_user_model.objects.create_user("student", password="pw")
        client.force_login(user)
        for url in (SEARCH + "?sender=alice@", message_url(morning["filtered"])):
            response = client.get(url)
            assert response.status_code == 403
            assert "not a staff account" in response.content.decode()
        assert not Look.objects.exists()

    def test_an_inactive_staff_account_is_refused(self, client, staff, morning):
        client.force_login(staff)
        staff.is_active = False
        staff.save()
        assert client.get(SEARCH).status_code in (302, 403)  # logged out, or refused

    def test_staff_without_any_permission_may_trace(self, staff_client, morning):
        assert staff_client.get(SEARCH, {"queue_id": "4AA091855DA0"}).status_code == 200

    def test_the_pages_answer_only_reads(self, staff_client, morning):
        assert staff_client.post(SEARCH, {"sender": "alice@"}).status_code == 405


class TestSearchPage:
    def test_the_empty_form_searches_nothing(self, staff_client, morning):
        response = staff_client.get(SEARCH)
        assert response.status_code == 200
        assert "results" not in response.context
        assert not Look.objects.exists()

    def test_results_link_each_message_to_its_page(self, staff_client, morning, frozen):
        response = staff_client.get(SEARCH, {"queue_id": "4AA091855DA0"})
        html = response.content.decode()
        for name in ("reused", "other relay", "filtered"):
            assert f'href="{message_url(morning[name])}"' in html
        assert "4AA091855DA0 → 776E41855DB2" in html
        assert (
            "erin@slow.example: still in the queue, last deferred at 2026-11-20 08:00:04." in html
        )

    def test_a_row_lists_five_recipients_and_counts_the_rest(self, staff_client, db, frozen):
        t = NOW - dt.timedelta(hours=1)
        message = Message.objects.create(
            relay="smtp1", queue_id="5BB1000001", first_seen=t, sender="bulk@ee.nthu.edu.tw"
        )
        Event.objects.bulk_create(
            Event(
                time=t,
                day=t.date(),
                sender="bulk@ee.nthu.edu.tw",
                status=Status.SENT,
                message=message,
                relay="smtp1",
                queue_id="5BB1000001",
                recipient=f"r{n}@example.com",
            )
            for n in range(7)
        )
        html = staff_client.get(SEARCH, {"sender": "bulk@"}).content.decode()
        assert "r4@example.com" in html and "r5@example.com" not in html
        assert "and 2 more" in html

    def test_a_message_id_is_found_with_or_without_its_brackets(self, staff_client, morning):
        for value in ("<ca10035e@cs.nthu.edu.tw>", " ca10035e@cs.nthu.edu.tw "):
            response = staff_client.get(SEARCH, {"message_id": value})
            assert [r.queue_ids for r in response.context["results"]] == [
                ["4AA091855DA0", "776E41855DB2"]
            ]

    def test_a_bad_field_is_explained_and_nothing_searched(self, staff_client, morning):
        response = staff_client.get(SEARCH, {"queue_id": "4AA0-91855", "client_ip": "300.1.1.1"})
        assert response.status_code == 200
        errors = response.context["form"].errors
        assert "letters and digits" in errors["queue_id"][0]
        assert "client_ip" in errors
        assert not Look.objects.exists()

    def test_a_range_ending_before_the_start_is_refused(self, staff_client, morning, frozen):
        response = staff_client.get(
            SEARCH, {"sender": "alice@", "since": "2026-11-20T08:00", "until": "2026-11-19T08:00"}
        )
        assert "before its start" in response.context["form"].errors["until"][0]

    def test_a_range_older_than_the_logs_starts_where_they_start(
        self, staff_client, morning, frozen
    ):
        response = staff_client.get(SEARCH, {"sender": "alice@", "since": "2025-01-01T00:00"})
        criteria = response.context["criteria"]
        assert criteria.since == NOW - dt.timedelta(days=31)

    def test_the_csv_holds_every_result(self, staff_client, morning, frozen):
        # No field but the range: everything logged since then.
        response = staff_client.get(reverse("tracing:export"), {"since": "2026-11-19T10:00"})
        assert response["Content-Type"] == "text/csv"
        assert response["Content-Disposition"] == 'attachment; filename="trace-20261120-1000.csv"'
        rows = list(csv.reader(io.StringIO(response.content.decode().lstrip("\ufeff"))))
        assert rows[0][:4] == ["Time", "Relay", "Queue IDs", "Sender"]
        messages = [r for r in rows[1:] if r[2] and " → " in r[2]]
        assert messages == [
            [
                "2026-11-19 10:40:57",
                "smtp1",
                "4AA091855DA0 → 776E41855DB2",
                "alice@cs.nthu.edu.tw",
                "140.114.63.228",
                "bob@example.com: sent (1); carol@example.org: bounced (3)",
                "4",
                "",
            ]
        ]
        assert len(rows) == 1 + 7  # 4 messages, 3 refusals of alice's client
        look = Look.objects.get()
        assert (look.kind, look.results) == ("export", 7)
        assert look.criteria["since"] == "2026-11-19T10:00:00+08:00"


class TestMessagePage:
    def test_the_filter_hand_off_is_linked_both_ways(self, staff_client, morning):
        first, requeued = morning["filtered"], morning["requeued"]
        html = staff_client.get(message_url(first)).content.decode()
        assert f'<a href="{message_url(requeued)}">776E41855DB2</a>' in html
        html = staff_client.get(message_url(requeued)).content.decode()
        assert f'<a href="{message_url(first)}">4AA091855DA0</a>' in html

    def test_the_page_shows_the_whole_path_and_what_the_codes_mean(self, staff_client, morning):
        response = staff_client.get(message_url(morning["requeued"]))
        html = response.content.decode()
        assert "pc.cs.nthu.edu.tw[140.114.63.228]" in html and "SASL login alice" in html
        assert "&lt;ca10035e@cs.nthu.edu.tw&gt;" in html
        assert "452 4.2.2 Mailbox full" in html and "mx.example.org[192.0.2.26]:25" in html
        assert "The recipient address does not exist" in html  # 5.1.1 explained
        assert [s.kind for s in response.context["path"]].count("attempt") == 4

    def test_refusals_of_the_same_client_are_beside_the_message(self, staff_client, morning):
        response = staff_client.get(message_url(morning["filtered"]))
        assert [e.recipient for e in response.context["nearby"]] == ["spam@example.net", ""]
        assert "Relay access denied" in response.content.decode()

    def test_what_the_logs_do_not_show_is_on_the_page_and_in_the_json(self, staff_client, morning):
        html = staff_client.get(message_url(morning["middle"])).content.decode()
        assert "Seen only from its middle" in html
        data = staff_client.get(reverse("tracing:message_json", args=[morning["reused"].pk])).json()
        assert data["gaps"] == [
            {
                "code": "still_in_queue",
                "text": "erin@slow.example: still in the queue, last deferred at "
                "2026-11-20 08:00:04.",
            }
        ]
        assert [(r["address"], r["status"]) for r in data["recipients"]] == [
            ("nobody@phys.nthu.edu.tw", "refused"),
            ("erin@slow.example", "deferred"),
        ]

    def test_an_unknown_message_is_not_found(self, staff_client, db):
        assert staff_client.get("/admin/trace/message/999999/").status_code == 404

    def test_the_page_speaks_traditional_chinese(self, staff_client, morning):
        staff_client.cookies["django_language"] = "zh-hant"
        html = staff_client.get(message_url(morning["reused"])).content.decode()
        assert "仍在佇列中" in html and "這封信的經過" in html


class TestAudit:
    def test_each_search_and_page_is_recorded_with_who_where_and_what(self, staff, morning):
        client = Client(REMOTE_ADDR="140.114.1.2")
        client.force_login(staff)
        client.get(SEARCH, {"sender": "alice@", "page": "1"})
        client.get(message_url(morning["requeued"]))
        client.get(reverse("tracing:message_json", args=[morning["requeued"].pk]))
        looks = list(Look.objects.order_by("id"))
        assert [(x.kind, x.user, x.username, x.client_ip) for x in looks] == [
            ("search", staff, "opr", "140.114.1.2"),
            ("message", staff, "opr", "140.114.1.2"),
            ("message", staff, "opr", "140.114.1.2"),
        ]
        assert looks[0].criteria["sender"] == "alice@" and looks[0].criteria["page"] == 1
        assert looks[0].results == 4  # alice's message and her three refusals
        assert looks[1].criteria == {
            "message": morning["requeued"].pk,
            "queue_id": "776E41855DB2",
            "relay": "smtp1",
            "format": "page",
        }
        assert looks[2].criteria["format"] == "json"

    def test_the_client_address_is_the_one_our_proxy_saw(self, staff, morning, settings):
        settings.SMTPLOG_TRUSTED_PROXY_COUNT = 1
        client = Client(REMOTE_ADDR="10.0.0.1", HTTP_X_FORWARDED_FOR="6.6.6.6, 140.114.9.9")
        client.force_login(staff)
        client.get(SEARCH, {"queue_id": "4AA091855DA0"})
        assert Look.objects.get().client_ip == "140.114.9.9"

    def test_superusers_read_the_audit_in_the_admin(self, superuser_client, staff_client, morning):
        staff_client.get(SEARCH, {"sender": "alice@"})
        changelist = reverse("admin:tracing_look_changelist")
        response = superuser_client.get(changelist)
        assert response.status_code == 200
        assert "sender=alice@" in response.content.decode()
        look = Look.objects.get()
        assert (
            superuser_client.get(reverse("admin:tracing_look_change", args=[look.pk])).status_code
            == 200
        )
        assert (
            superuser_client.post(reverse("admin:tracing_look_delete", args=[look.pk])).status_code
            == 403
        )
        assert "Trace audit" in superuser_client.get(reverse("admin:index")).content.decode()

    def test_staff_who_are_not_superusers_do_not_see_the_audit(self, staff, staff_client, morning):
        # Not even when given the model's view permission.
        staff.user_permissions.set(Permission.objects.filter(codename="view_look"))
        staff_client.get(SEARCH, {"sender": "alice@"})
        assert staff_client.get(reverse("admin:tracing_look_changelist")).status_code == 403
        assert "Trace audit" not in staff_client.get(reverse("admin:index")).content.decode()


class TestLinks:
    def test_the_admin_index_and_the_dashboard_link_to_the_trace(self, staff_client, db):
        assert f'href="{SEARCH}"' in staff_client.get(reverse("admin:index")).content.decode()
        assert f'href="{SEARCH}"' in staff_client.get("/admin/dashboard/").content.decode()

    def test_the_pages_use_no_inline_style_or_script(self, staff_client, morning):
        for url in (SEARCH + "?sender=*", message_url(morning["filtered"])):
            html = staff_client.get(url).content.decode()
            assert "<style" not in html and " style=" not in html
            assert "<script>" not in html.replace("<script src=", "")

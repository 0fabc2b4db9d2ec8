"""The staff dashboard: per-day chart, top senders with alert state, ingestion, queries."""

from __future__ import annotations

import datetime as dt

import pytest
from django.contrib.auth.models import User

from alerts import dashboard
from alerts.models import Alert
from queries.models import Query
from smtplog.models import LogFile
from tests.alerts.conftest import YESTERDAY, counter
from tests.conftest import NOW

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("frozen")]
URL = "/admin/dashboard/"


@pytest.fixture
def staff_client(client):
    client.force_login(User.objects.create_user("opr", is_staff=True))
    return client


@pytest.fixture
def busy_month():
    counter("alice@cs.nthu.edu.tw", sent=400, bounced=3)
    counter("bob@ee.nthu.edu.tw", sent=5, bounced=11)
    counter("carol@nthu.edu.tw", sent=7)
    counter("alice@cs.nthu.edu.tw", day=YESTERDAY - dt.timedelta(days=20), deferred=42)
    Alert.objects.create(
        sender="alice@cs.nthu.edu.tw",
        day=YESTERDAY,
        total=403,
        bounced=3,
        state=Alert.State.SENT,
        attempts=1,
        created=NOW,
        sent_at=NOW,
    )
    LogFile.objects.create(
        fingerprint="f1",
        path="/var/log/relay1/mail.log",
        position=1000,
        size=5096,
        lines=12,
        last_line_time=NOW - dt.timedelta(minutes=3),
        last_error="PermissionError: mail.log.2.gz",
    )
    Query.objects.create(
        address="dave@nthu.edu.tw",
        begin=YESTERDAY,
        end=YESTERDAY,
        client_ip="140.114.63.228",
        language="zh-hant",
        created=NOW,
        outcome=Query.Outcome.SENT,
    )


def test_the_dashboard_shows_a_month_of_totals_top_senders_files_and_queries(
    staff_client, busy_month
):
    response = staff_client.get(URL)

    assert response.status_code == 200
    page = response.content.decode()
    assert page.count("<g><title>") == 31  # one bar per day
    assert "2026-11-19: Sum 426, Sent 412, Bounced 14" in page
    assert "2026-10-30: Sum 42, Deferred 42" in page
    assert '<tr class="over"><td>alice@cs.nthu.edu.tw</td><td class="num">403</td>' in page
    assert '<tr class="over"><td>bob@ee.nthu.edu.tw</td>' in page
    assert "<tr><td>carol@nthu.edu.tw</td>" in page
    assert "sent 2026-11-20 10:00" in page  # alice's alert
    assert "not yet" in page  # bob's
    assert "/var/log/relay1/mail.log" in page
    assert "4.0\xa0KB" in page  # unread: 5096 - 1000 bytes
    assert "3\xa0minutes ago" in page
    assert "PermissionError: mail.log.2.gz" in page
    assert "dave@nthu.edu.tw" in page
    assert "<script" not in page.split('id="content-main"')[1]  # the chart needs no JS


def test_the_dashboard_renders_without_any_data(staff_client):
    response = staff_client.get(URL)

    assert response.status_code == 200
    for empty in (
        "No events counted in the last 31 days yet.",
        "No mail counted that day.",
        "No log file ingested yet.",
        "No queries yet.",
    ):
        assert empty in response.content.decode()


def test_the_dashboard_renders_in_chinese(staff_client, busy_month):
    response = staff_client.get(URL, headers={"accept-language": "zh-hant"})

    assert response.status_code == 200
    assert "最近 31 天每日事件數" in response.content.decode()


def test_anonymous_visitors_are_sent_to_the_admin_login(client):
    response = client.get(URL)

    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/?next=/admin/dashboard/")


def test_users_who_are_not_staff_are_sent_to_the_admin_login(client):
    client.force_login(User.objects.create_user("student"))

    assert client.get(URL).status_code == 302


def test_the_admin_index_links_to_the_dashboard(staff_client):
    assert 'href="/admin/dashboard/"' in staff_client.get("/admin/").content.decode()


def test_alerts_are_listed_read_only(client, busy_month):
    client.force_login(User.objects.create_superuser("root"))

    listing = client.get("/admin/alerts/alert/")

    assert listing.status_code == 200
    assert "alice@cs.nthu.edu.tw" in listing.content.decode()
    assert client.get("/admin/alerts/alert/add/").status_code == 403


def test_the_axis_top_is_a_round_number_at_or_over_the_highest_day():
    assert [dashboard.nice_ceiling(n) for n in (0, 1, 3, 10, 11, 418, 501, 300_000)] == [
        4,
        4,
        4,
        10,
        20,
        500,
        600,
        400_000,
    ]

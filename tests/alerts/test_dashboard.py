"""The staff dashboard: per-day chart, top senders with alert state, ingestion, queries."""

from __future__ import annotations

import datetime as dt

import pytest
from django.contrib import admin
from django.contrib.auth.models import User
from django.urls import resolve, reverse

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


def log_file(path: str, *, lines_ago: dt.timedelta, unread: int = 0, read_ago=None, **fields):
    f = LogFile.objects.create(
        fingerprint=path,
        path=path,
        position=4096,
        size=4096 + unread,
        lines=40,
        last_line_time=NOW - lines_ago,
        **fields,
    )
    LogFile.objects.filter(pk=f.pk).update(updated=NOW - (read_ago or dt.timedelta(minutes=1)))


@pytest.fixture
def three_relays_and_a_silent_one():
    hour, day = dt.timedelta(hours=1), dt.timedelta(days=1)
    # relay1: its current file is fine; an old rotated copy could not be read.
    log_file("/var/log/relays/relay1/mail.log", lines_ago=dt.timedelta(seconds=30))
    log_file("/var/log/relays/relay1/mail.log.1", lines_ago=day)
    log_file("/var/log/relays/relay1/mail.log.2.gz", lines_ago=2 * day)
    log_file(
        "/var/log/relays/relay1/mail.log.3.gz",
        lines_ago=3 * day,
        unread=9000,
        last_error="EOFError: Compressed file ended before the end-of-stream marker",
    )
    # relay2: 2 MB left to read and not read on for half an hour.
    log_file(
        "/var/log/relays/relay2/mail.log",
        lines_ago=dt.timedelta(minutes=31),
        unread=2_000_000,
        read_ago=dt.timedelta(minutes=30),
    )
    log_file("/var/log/relays/relay2/mail.log.1", lines_ago=day)
    # relay3: all well, one file so far.
    log_file("/var/log/relays/relay3/mail.log", lines_ago=dt.timedelta(minutes=2))
    # relay4: its log stopped arriving three hours ago.
    log_file("/var/log/relays/relay4/mail.log", lines_ago=3 * hour)
    for n in range(1, 31):
        log_file(f"/var/log/relays/relay4/mail.log.{n}.gz", lines_ago=n * day)


def test_the_log_files_are_one_row_per_relay_stuck_first_rotated_folded(
    staff_client, three_relays_and_a_silent_one
):
    response = staff_client.get(URL)

    logs = response.context["logs"]
    assert [(log["current"]["path"], log["stuck"]) for log in logs] == [
        ("/var/log/relays/relay1/mail.log", True),  # a rotated copy is stuck
        ("/var/log/relays/relay2/mail.log", True),
        ("/var/log/relays/relay4/mail.log", True),
        ("/var/log/relays/relay3/mail.log", False),
    ]
    relay1, relay2, relay4, relay3 = logs
    # Rotated copies: stuck ones first, then newest first.
    assert [f["path"].rsplit("/", 1)[1] for f in relay1["rotated"]] == [
        "mail.log.3.gz",
        "mail.log.1",
        "mail.log.2.gz",
    ]
    assert relay2["current"]["problems"] == ["not read on for 30\xa0minutes"]
    assert relay4["current"]["problems"] == ["no new line for 3\xa0hours"]
    assert len(relay4["rotated"]) == 30 and relay4["stuck_rotated"] == []
    assert relay3["rotated"] == [] and relay3["current"]["problems"] == []

    page = response.content.decode()
    section = page.split("<h2>Log files</h2>")[1].split("</section>")[0]
    # Four rows; the rotated files are folded in <details>, a stuck one shown outside.
    assert section.count('<tr class="stuck">\n') == 3
    assert section.count("<details>") == 3
    assert '<div class="stuck-file"><span class="nowrap">mail.log.3.gz</span>' in section
    assert "3 rotated files (1 stuck)" in section
    assert "30 rotated files" in section
    assert "Stuck: error" in section and "EOFError: Compressed file ended" in section
    assert "Stuck: not read on for 30\xa0minutes" in section
    assert "1.9\xa0MB" in section  # relay2's unread bytes
    assert "Stuck: no new line for 3\xa0hours" in section
    assert section.index("relay1/mail.log<") < section.index("relay2/mail.log<")
    assert section.index("relay4/mail.log<") < section.index("relay3/mail.log<")


def test_the_dashboard_is_a_url_of_the_project_not_a_patch_of_the_admin_site(staff_client):
    assert reverse("dashboard") == URL
    assert resolve(URL).url_name == "dashboard"
    assert "dashboard" not in {getattr(p, "name", None) for p in admin.site.get_urls()}


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
    page = response.content.decode()
    assert "最近 31 天每日事件數" in page
    assert "<h2>記錄檔</h2>" in page and "卡住：錯誤" in page  # its last error


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

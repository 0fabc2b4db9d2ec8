"""For staff: the sender_report command and the read-only admin with its email action."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json

import pytest
from django.contrib.auth.models import User
from django.core import mail
from django.core.management import CommandError, call_command

from queries.models import Query
from queries.report import build_report, report_message
from tests.conftest import NOW

pytestmark = pytest.mark.django_db
DAY = (NOW - dt.timedelta(days=1)).date()


def run(*args) -> str:
    out = io.StringIO()
    call_command("sender_report", *args, stdout=out)
    return out.getvalue()


def test_it_prints_the_text_report(mail_events, frozen):
    text = run("Alice@CS.nthu.edu.tw", "--begin", DAY.isoformat(), "--end", DAY.isoformat())
    assert "Email: alice@cs.nthu.edu.tw" in text
    assert f"{DAY:%Y/%m/%d}        4" in text
    assert "dave@example.org mx.example.org[192.0.2.26]:25 (550 5.1.1 User unknown)" in text
    assert "bob@" not in text and "erin@" not in text


def test_the_text_is_worded_for_staff_not_for_the_addresss_owner(mail_events, frozen):
    text = run("alice@cs.nthu.edu.tw", "--begin", DAY.isoformat(), "--end", DAY.isoformat())
    mailed = report_message(build_report("alice@cs.nthu.edu.tw", DAY, DAY, "140.114.63.228"))
    mail_text = mailed.body

    # The mail speaks to the owner: who asked, from where, whom to ask for help.
    assert "Client IP: 140.114.63.228" in mail_text
    assert "because someone asked for it on the campus network" in mail_text
    assert "forward this whole message to" in mail_text
    # The printout has no client, and says it was printed for staff and sent nowhere.
    assert "Client IP" not in text
    assert "someone asked" not in text and "forward this whole message" not in text
    assert text.rstrip().endswith(
        "Printed for staff (manage.py sender_report): the report the owner of this address "
        "would get by mail for these days. Nothing was sent; a report by mail only ever goes "
        "to the address it describes."
    )

    # The same rows as the mail's (the mail adds a line about its CSV attachment).
    def rows(part: str) -> list[str]:
        part = part.split("Summary of logs")[1].split("About the columns")[0]
        return [line for line in part.splitlines() if line and "attached CSV file" not in line]

    assert "the same as in the attached CSV file" in mail_text
    assert rows(text) == rows(mail_text)
    assert len(mail.outbox) == 0


def test_the_text_for_staff_is_in_chinese_when_asked(mail_events, frozen):
    text = run("alice@cs.nthu.edu.tw", "--language", "zh-hant")
    assert "查詢者 IP" not in text
    assert "供管理人員查看" in text


def test_it_prints_every_row_as_csv(mail_events, frozen):
    rows = list(csv.reader(io.StringIO(run("alice@cs.nthu.edu.tw", "--format", "csv"))))
    assert rows[0][0] == "No." and len(rows) == 5
    assert [r[5] for r in rows[1:]] == ["auth_rcv", "sent", "deferred", "bounced"]


def test_it_prints_json_with_header_summary_and_details(mail_events, frozen):
    data = json.loads(run("alice@cs.nthu.edu.tw", "--format", "json", "--language", "zh-hant"))
    assert data["header"] == {
        "email": "alice@cs.nthu.edu.tw",
        "begin": (NOW.date() - dt.timedelta(days=30)).isoformat(),
        "end": NOW.date().isoformat(),
        "client_ip": "",
        "language": "zh-hant",
    }
    total = data["summary"][-1]
    assert total == {
        "date": "total",
        "sum": 4,
        "auth_blk": 0,
        "auth_rcv": 1,
        "bounced": 1,
        "deferred": 1,
        "expired": 0,
        "sent": 1,
    }
    assert [d["no"] for d in data["details"]] == [1, 2, 3, 4]


def test_it_refuses_a_reversed_range(db):
    with pytest.raises(CommandError):
        run("alice@cs.nthu.edu.tw", "--begin", "2026-11-10", "--end", "2026-11-01")


@pytest.fixture
def staff_client(client):
    user = User.objects.create_superuser("staff", "staff@nthu.edu.tw", "pw")
    client.force_login(user)
    return client


def test_the_admin_lists_queries_read_only(staff_client, frozen):
    Query.objects.create(
        address="alice@cs.nthu.edu.tw",
        begin=DAY,
        end=DAY,
        language="en",
        created=NOW,
        client_ip="140.114.63.228",
    )
    page = staff_client.get("/admin/queries/query/")
    assert page.status_code == 200 and "alice@cs.nthu.edu.tw" in page.content.decode()
    assert staff_client.get("/admin/queries/query/add/").status_code == 403
    query = Query.objects.get()
    change = staff_client.get(f"/admin/queries/query/{query.id}/change/")
    assert change.status_code == 200 and b'type="submit" value="Save"' not in change.content


def test_the_admin_action_emails_a_report_to_the_addresss_owner(
    staff_client, mail_events, frozen, django_capture_on_commit_callbacks
):
    asked = Query.objects.create(
        address="alice@cs.nthu.edu.tw",
        begin=DAY,
        end=DAY,
        language="zh-hant",
        created=NOW,
        outcome="limited",
    )
    with django_capture_on_commit_callbacks(execute=True):
        response = staff_client.post(
            "/admin/queries/query/",
            {"action": "email_report", "_selected_action": [asked.id]},
            follow=True,
        )
    assert "1 report queued" in response.content.decode()
    new = Query.objects.get(by_staff=True)
    assert (new.address, new.begin, new.end, new.outcome) == (
        "alice@cs.nthu.edu.tw",
        DAY,
        DAY,
        Query.Outcome.SENT,
    )
    assert len(mail.outbox) == 1 and mail.outbox[0].to == ["alice@cs.nthu.edu.tw"]
    assert "寄信紀錄" in mail.outbox[0].subject

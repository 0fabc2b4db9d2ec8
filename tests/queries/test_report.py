"""The report builder and its renderings."""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections import Counter

import pytest
from django.core import mail
from django.db import connection

from queries.report import (
    build_report,
    details,
    render_csv,
    render_json,
    render_text,
    report_message,
)
from smtplog.models import COUNTER_FIELDS, DailyCounter, Event, Status
from smtplog.store import add_events
from tests.conftest import NOW, TZ, make_event
from tests.services import require_postgres

pytestmark = pytest.mark.django_db
ALICE = "alice@cs.nthu.edu.tw"
BEGIN = NOW.date() - dt.timedelta(days=30)
END = NOW.date()

REPLIES = [  # status, dsn, response
    (Status.SENT, "2.0.0", "250 2.0.0 Ok: queued as 1A2B3C"),
    (Status.DEFERRED, "4.2.2", "452 4.2.2 Mailbox full"),
    (Status.DEFERRED, "4.4.1", "connect to mx.example.org[192.0.2.9]:25: Connection timed out"),
    (Status.DEFERRED, "4.7.1", "450 4.7.1 Greylisted, please try again in 300 seconds"),
    (Status.DEFERRED, "4.7.0", "421 4.7.0 Rate limit exceeded, too many messages"),
    (
        Status.BOUNCED,
        "5.1.1",
        "550 5.1.1 <x@example.com>: Recipient address rejected: User unknown",
    ),
    (Status.BOUNCED, "5.1.10", "550 5.1.10 RESOLVER.ADR.RecipientNotFound"),
    (Status.BOUNCED, "5.2.1", "550 5.2.1 The email account that you tried to reach is disabled"),
    (Status.BOUNCED, "5.2.2", "552 5.2.2 Mailbox full"),
    (Status.BOUNCED, "5.4.1", "550 5.4.1 Recipient address rejected: Access denied"),
    (Status.BOUNCED, "5.7.1", "554 5.7.1 Message rejected as spam"),
    (Status.BOUNCED, "5.7.26", "550 5.7.26 Unauthenticated email is not accepted"),
    (Status.EXPIRED, "", "message expired, returned to sender"),
    (Status.AUTH_RCV, "", ""),
    (Status.AUTH_BLK, "", "SASL LOGIN authentication failed: authentication failure"),
    (Status.AUTH_BLK, "5.7.1", "554 5.7.1 <x@example.com>: Relay access denied"),
]


@pytest.fixture
def many_events(db) -> list[Event]:
    """alice: every kind of reply over several days; bob and carol on the same days."""
    events = []
    for n, (status, dsn, response) in enumerate(REPLIES * 3):
        time = NOW - dt.timedelta(days=n % 5, minutes=n)
        events.append(
            make_event(
                ALICE,
                status,
                time,
                recipient=f"r{n}@example.com",
                next_hop="mx.example.com[192.0.2.25]:25" if dsn else "",
                dsn=dsn,
                response=response,
                client_ip="140.114.63.228",
                queue_id=f"Q{n:04d}",
            )
        )
    for n in range(7):
        events.append(
            make_event(
                "bob@ee.nthu.edu.tw",
                Status.SENT,
                NOW - dt.timedelta(days=n % 3),
                recipient="b@example.com",
            )
        )
    events.append(make_event("ALICE@cs.nthu.edu.tw.evil.org", Status.SENT, NOW))
    # before the range: must not appear
    events.append(make_event(ALICE, Status.SENT, NOW - dt.timedelta(days=31)))
    return add_events(events)


def test_counts_equal_the_daily_counters_and_the_events(many_events):
    report = build_report(ALICE, BEGIN, END)
    assert len(report.days) == 31
    assert [d.day for d in report.days] == [BEGIN + dt.timedelta(days=n) for n in range(31)]
    assert report.total.total == len(REPLIES) * 3 == len(report.rows)
    counters = DailyCounter.objects.filter(sender=ALICE, day__gte=BEGIN, day__lte=END)
    for day in report.days:
        counter = counters.filter(day=day.day).first()
        expected = tuple(getattr(counter, f) for f in COUNTER_FIELDS) if counter else (0,) * 6
        assert day.counts == expected
        assert day.total == sum(expected)
    by_status = Counter(row.status for row in report.rows)
    assert report.total.counts == tuple(by_status[f] for f in COUNTER_FIELDS)


def test_each_days_rows_add_up_to_its_sum(many_events):
    report = build_report(ALICE, BEGIN, END)
    rows_per_day = Counter(row.time.astimezone(TZ).date() for row in report.rows)
    for day in report.days:
        assert rows_per_day[day.day] == day.total


def test_rows_are_numbered_oldest_first_one_per_event(many_events):
    report = build_report(ALICE, BEGIN, END)
    assert [r.number for r in report.rows] == list(range(1, len(report.rows) + 1))
    times = [r.time for r in report.rows]
    assert times == sorted(times)
    assert len({r.queue_id for r in report.rows}) == len(report.rows)


def test_only_the_asked_senders_rows_appear(many_events):
    report = build_report(ALICE, BEGIN, END)
    queue_ids = {r.queue_id for r in report.rows}
    theirs = Event.objects.filter(sender=ALICE, day__gte=BEGIN).values_list("queue_id", flat=True)
    assert queue_ids == set(theirs)
    assert not any("b@example.com" in r.message for r in report.rows)
    bob = build_report("bob@ee.nthu.edu.tw", BEGIN, END)
    assert bob.total.total == len(bob.rows) == 7


def test_the_response_message_shows_recipient_next_hop_and_reply(many_events):
    rows = build_report(ALICE, BEGIN, END).rows
    sent = next(r for r in rows if r.status == "sent")
    assert sent.message.startswith("r")
    assert (
        "@example.com mx.example.com[192.0.2.25]:25 (250 2.0.0 Ok: queued as 1A2B3C)"
        in sent.message
    )
    sasl = next(r for r in rows if "SASL" in r.message)
    assert "authentication failed" in sasl.message


def test_every_code_met_is_explained(many_events):
    report = build_report(ALICE, BEGIN, END)
    codes = [e.code for e in report.explanations]
    for code in (
        "2.0.0",
        "4.2.2",
        "4.4.1",
        "5.1.1",
        "5.1.10",
        "5.2.1",
        "5.2.2",
        "5.4.1",
        "5.7.1",
        "5.7.26",
    ):
        assert code in codes
    assert "4.7.x greylisting" in codes and "4.7.x rate limit" in codes
    assert "authentication failed" in codes and "rejected by the relay" in codes
    assert len(codes) == len(set(codes))
    text = {e.code: e.text for e in report.explanations}
    assert "does not exist" in text["5.1.1"]
    zh = {e.code: e.text for e in build_report(ALICE, BEGIN, END, language="zh-hant").explanations}
    assert "不存在" in zh["5.1.1"]


def test_unknown_codes_are_explained_by_class():
    from queries.explain import Explanation, explain

    assert explain({"5.3.9"}) == [Explanation("5.3.9", explain({"5.3.9"})[0].text)]
    assert "permanent" in explain({"5.3.9"})[0].text
    assert "temporary" in explain({"4"})[0].text


def test_the_email_has_both_parts_a_csv_and_the_headers(many_events, assert_email_contains):
    report = build_report(ALICE, BEGIN, END, client_ip="140.114.63.228")
    report_message(report).send()
    message = mail.outbox[0]
    assert message.to == [ALICE]
    assert message.extra_headers["Auto-Submitted"] == "auto-generated"
    assert message.subject == f"SMTP log report for {ALICE}, {BEGIN:%Y/%m/%d} to {END:%Y/%m/%d}"
    for fragment in (
        "Email",
        ALICE,
        "Client IP",
        "140.114.63.228",
        "Language",
        "English",
        "Summary of logs",
        "Detailed logs",
        "Auth_blk",
        "Total",
        f"{END:%Y/%m/%d}",
        "5.7.26",
        "User unknown",
    ):
        assert_email_contains(fragment)
    ((name, content, mimetype),) = message.attachments
    assert name == f"smtp-log-{BEGIN:%Y%m%d}-{END:%Y%m%d}.csv" and mimetype == "text/csv"
    rows = list(csv.reader(io.StringIO(content.lstrip("\ufeff"))))
    assert rows[0][:3] == ["No.", "Sender IP", "SMTP Relay"]
    assert len(rows) == 1 + len(report.rows)


def test_the_body_shows_the_most_recent_rows_and_says_so_above_them(many_events, settings):
    settings.SMTPLOG_REPORT_BODY_ROWS = 10
    report = build_report(ALICE, BEGIN, END)
    message = report_message(report)
    total = len(report.rows)
    first, last = report.rows[-10], report.rows[-1]
    note = (
        f"Only the most recent 10 of {total} rows are shown here: No. {total - 9} to {total}, "
        f"{first.time.astimezone(TZ):%Y/%m/%d %H:%M} to {last.time.astimezone(TZ):%Y/%m/%d %H:%M}."
        " The attached CSV file holds every row."
    )
    html = message.alternatives[0][0]
    for part in (message.body, html):
        assert note in part
        assert part.index(note) < part.index(last.queue_id)  # above the table
    assert f"\n{total} | " in message.body and f"\n{total - 9} | " in message.body
    assert f"\n{total - 10} | " not in message.body
    csv_rows = render_csv(report).lstrip("\ufeff").splitlines()
    assert len(csv_rows) == 1 + total


def test_a_body_showing_every_row_says_the_csv_has_them_too(many_events):
    message = report_message(build_report(ALICE, BEGIN, END))
    assert f"{len(build_report(ALICE, BEGIN, END).rows)} rows, oldest first, the same as in" in (
        message.body
    )


def test_both_languages_render(many_events):
    en = report_message(build_report(ALICE, BEGIN, END, language="en"))
    zh = report_message(build_report(ALICE, BEGIN, END, language="zh-hant"))
    assert "Summary of logs" in en.body
    for part in (zh.body, zh.alternatives[0][0]):
        assert "統計摘要" in part and "詳細紀錄" in part and "繁體中文" in part
    assert "寄信紀錄" in zh.subject
    assert "編號" in zh.attachments[0][1]


def test_an_address_without_records_gets_zeros(db):
    report = build_report("nobody@cs.nthu.edu.tw", BEGIN, END)
    assert len(report.days) == 31 and report.total.total == 0 and report.rows == []
    assert "No records" in report_message(report).body


def test_json_has_header_summary_and_details(many_events):
    data = render_json(build_report(ALICE, BEGIN, END))
    assert data["header"]["email"] == ALICE
    assert len(data["summary"]) == 32 and data["summary"][-1]["date"] == "total"
    assert len(data["details"]) == data["summary"][-1]["sum"]


@pytest.mark.postgres
def test_detail_times_read_as_text_are_the_stored_instants(db):
    """On PostgreSQL details() reads each time as ISO text (ISO_TIME): the same aware
    datetimes, to the microsecond, as the ORM reads, whatever the session's time zone."""
    require_postgres()
    times = [
        dt.datetime(2026, 11, 19, 23, 59, 59, 999999, tzinfo=TZ),
        dt.datetime(2026, 11, 20, 0, 0, 0, 1, tzinfo=TZ),
        dt.datetime(2026, 11, 20, 9, 30, 15, tzinfo=TZ),
    ]
    add_events(
        [make_event(ALICE, Status.SENT, t, recipient=f"r{n}@x.org") for n, t in enumerate(times)]
    )
    stored = list(
        Event.objects.filter(sender=ALICE).order_by("time").values_list("time", flat=True)
    )
    assert [row.time for row in details(ALICE, BEGIN, END)] == stored == times
    with connection.cursor() as cursor:
        cursor.execute("SET TIME ZONE 'America/New_York'")  # not the UTC Django sets
    rows = details(ALICE, BEGIN, END)
    assert [row.time for row in rows] == times
    assert all(row.time.utcoffset() == dt.timedelta(0) for row in rows)
    assert [row.recipient for row in rows] == ["r0@x.org", "r1@x.org", "r2@x.org"]


def test_the_staff_text_has_every_row_and_speaks_of_no_attachment(many_events, settings):
    settings.SMTPLOG_REPORT_BODY_ROWS = 10
    report = build_report(ALICE, BEGIN, END)
    text = render_text(report)
    assert "\n1 | " in text and f"\n{len(report.rows)} | " in text
    assert "CSV" not in text


@pytest.mark.postgres
def test_details_plan_without_bitmap_scans_and_put_the_setting_back(many_events):
    """_without_bitmap_scans: the heavy sender's rows come from the (sender, time) index
    (bench/report.py: a bitmap scan and a sort of every row doubled the report's time);
    the session's setting is as it was afterwards."""
    require_postgres()
    seen = []

    def spy(execute, sql, params, many, context):
        if "smtplog_event" in sql:
            with connection.cursor() as cursor:
                cursor.execute("SELECT current_setting('enable_bitmapscan')")
                seen.append(cursor.fetchone()[0])
        return execute(sql, params, many, context)

    with connection.execute_wrapper(spy):
        rows = details(ALICE, BEGIN, END)
    assert seen == ["off"]
    assert [row.number for row in rows] == list(range(1, len(rows) + 1))
    assert [row.time for row in rows] == sorted(row.time for row in rows)
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_setting('enable_bitmapscan')")
        assert cursor.fetchone()[0] == "on"

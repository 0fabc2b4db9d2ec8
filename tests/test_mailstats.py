"""mailstats: a day's counters per sender, which day it is, and their Total."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json

import pytest
import time_machine
from django.core.management import CommandError, call_command

from smtplog.models import DailyCounter
from tests.conftest import NOW

pytestmark = pytest.mark.django_db
DAY = dt.date(2026, 6, 3)


@pytest.fixture
def day_of_mail():
    DailyCounter.objects.create(sender="h@nthu.edu.tw", day=DAY, auth_rcv=1, bounced=1, sent=1)
    DailyCounter.objects.create(sender="grace@cs.nthu.edu.tw", day=DAY, sent=40, deferred=2)
    DailyCounter.objects.create(sender="ann@nthu.edu.tw", day=DAY, auth_blk=7)
    DailyCounter.objects.create(sender="h@nthu.edu.tw", day=DAY + dt.timedelta(days=1), sent=99)


def mailstats(*args: str) -> str:
    out = io.StringIO()
    call_command("mailstats", *args, stdout=out)
    return out.getvalue()


def test_the_table_says_which_day_and_ends_with_a_total_row(day_of_mail):
    lines = mailstats("--day", "2026-06-03").splitlines()

    assert lines[0] == (
        "Mail counted on 2026-06-03 (Wednesday), local day in Asia/Taipei: 3 senders."
    )
    assert lines[1] == ""
    assert lines[2].split() == [
        "Sender",
        "Sum",
        "Auth_blk",
        "Auth_rcv",
        "Bounced",
        "Deferred",
        "Expired",
        "Sent",
    ]
    rows = [line.split() for line in lines[3:]]
    assert rows == [
        ["grace@cs.nthu.edu.tw", "42", "0", "0", "0", "2", "0", "40"],  # heaviest first
        ["ann@nthu.edu.tw", "7", "7", "0", "0", "0", "0", "0"],
        ["h@nthu.edu.tw", "3", "0", "1", "1", "0", "0", "1"],
        ["Total", "52", "7", "1", "1", "2", "0", "41"],  # the next day's 99 not in it
    ]
    # The columns line up under their headings.
    assert {len(line) for line in lines[2:]} == {len(lines[2])}


def test_one_sender_gets_its_row_and_the_same_total(day_of_mail):
    lines = mailstats("--day", "2026-06-03", "--sender", "<H@nthu.edu.tw>").splitlines()

    assert lines[0].endswith("Asia/Taipei, for h@nthu.edu.tw: 1 sender.")
    assert [line.split()[:2] for line in lines[3:]] == [["h@nthu.edu.tw", "3"], ["Total", "3"]]


def test_a_day_without_mail_says_so_and_which_day_it_was(db):
    assert mailstats("--day", "2026-06-04") == (
        "Mail counted on 2026-06-04 (Thursday), local day in Asia/Taipei: 0 senders.\n"
        "(no mail counted that day)\n"
    )


def test_without_a_day_it_is_todays_local_day(db):
    DailyCounter.objects.create(sender="h@nthu.edu.tw", day=NOW.date(), sent=5)
    with time_machine.travel(NOW, tick=False):
        text = mailstats()

    assert text.startswith("Mail counted on 2026-11-20 (Friday), local day in Asia/Taipei: 1 ")
    assert text.splitlines()[-1].split() == ["Total", "5", "0", "0", "0", "0", "0", "5"]


def test_csv_has_the_day_on_every_row_and_no_total_row(day_of_mail):
    rows = list(csv.reader(io.StringIO(mailstats("--day", "2026-06-03", "--format", "csv"))))

    assert rows[0] == [
        "Day",
        "Sender",
        "Sum",
        "Auth_blk",
        "Auth_rcv",
        "Bounced",
        "Deferred",
        "Expired",
        "Sent",
    ]
    assert rows[1:] == [
        ["2026-06-03", "grace@cs.nthu.edu.tw", "42", "0", "0", "0", "2", "0", "40"],
        ["2026-06-03", "ann@nthu.edu.tw", "7", "7", "0", "0", "0", "0", "0"],
        ["2026-06-03", "h@nthu.edu.tw", "3", "0", "1", "1", "0", "0", "1"],
    ]


def test_json_names_the_day_the_senders_and_the_total(day_of_mail):
    data = json.loads(
        mailstats("--day", "2026-06-03", "--format", "json", "--sender", "h@nthu.edu.tw")
    )

    counts = {
        "sum": 3,
        "auth_blk": 0,
        "auth_rcv": 1,
        "bounced": 1,
        "deferred": 0,
        "expired": 0,
        "sent": 1,
    }
    assert data == {
        "day": "2026-06-03",
        "time_zone": "Asia/Taipei",
        "senders": [{"sender": "h@nthu.edu.tw", **counts}],
        "total": counts,
    }


def test_a_day_that_is_not_a_date_is_refused_with_an_example(db):
    with pytest.raises(CommandError, match="not a date like 2026-11-27"):
        call_command("mailstats", "--day", "yesterday")

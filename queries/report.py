"""The report: a plain function over the event store, then its renderings.

build_report() reads one sender's daily counters (the summary) and events (the detail),
nothing else; render_* turn a Report into the email, CSV, JSON or the staff's text.
"""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import io
import operator
from dataclasses import dataclass, field
from typing import NamedTuple

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.db import connection, transaction
from django.db.models import CharField, Func
from django.template.loader import render_to_string
from django.utils import timezone, translation
from django.utils.html import format_html
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from queries import explain
from smtplog.emails import make_message
from smtplog.models import (
    COUNTER_FIELDS,
    COUNTERS,
    LABELS,
    SUM,
    DailyCounter,
    Event,
    normalize_address,
)

DATE = "%Y/%m/%d"
# What each column means: in the email, and on the help page.
COLUMN_HELP = [
    (SUM.label, gettext_lazy("the sum of the six columns that follow.")),
    (
        LABELS["auth_blk"],
        gettext_lazy(
            "attempts the relay refused: rejected messages, and failed "
            "logins (SMTP AUTH) with your address or login."
        ),
    ),
    (
        LABELS["auth_rcv"],
        gettext_lazy("messages the relay accepted from you after you logged in (SMTP AUTH)."),
    ),
    (
        LABELS["bounced"],
        gettext_lazy("recipients the message could not be delivered to; the reply says why."),
    ),
    (
        LABELS["deferred"],
        gettext_lazy(
            "delivery attempts that failed for now; the relay retries "
            "later, so one recipient can be counted several times."
        ),
    ),
    (
        LABELS["expired"],
        gettext_lazy(
            "messages the relay gave up on after retrying for days; they were returned to you."
        ),
    ),
    (LABELS["sent"], gettext_lazy("recipients whose mail server accepted the message.")),
    (
        gettext_lazy("Sender IP"),
        gettext_lazy("the computer the message was sent from (for webmail, the webmail server)."),
    ),
    (gettext_lazy("SMTP Relay"), gettext_lazy("the campus relay that handled it.")),
    (gettext_lazy("ID"), gettext_lazy("the relay's queue ID of the message.")),
    (
        gettext_lazy("Response Message"),
        gettext_lazy(
            "the recipient, the server the message "
            "was handed to, and that server's "
            "reply (or the reason it was refused)."
        ),
    ),
]
TIME = "%Y/%m/%d %H:%M:%S"


class DayRow(NamedTuple):
    day: dt.date | None  # None: the Total row
    total: int
    counts: tuple[int, ...]  # in COUNTER_FIELDS order


class DetailRow(NamedTuple):
    """One counted event, as the store holds it; shown in TIME_ZONE by the renderings."""

    number: int
    sender_ip: str | None
    relay: str
    time: dt.datetime
    queue_id: str
    status: str
    recipient: str
    next_hop: str
    response: str
    dsn: str

    @property
    def message(self) -> str:
        """Recipient, next hop and the reply in parentheses, or the refusal text alone."""
        response = f"({self.response})" if self.response and self.recipient else self.response
        return " ".join(part for part in (self.recipient, self.next_hop, response) if part)


@dataclass
class Report:
    address: str
    begin: dt.date
    end: dt.date
    client_ip: str
    language: str
    days: list[DayRow]
    total: DayRow
    rows: list[DetailRow]
    explanations: list[explain.Explanation] = field(default_factory=list)

    @property
    def language_name(self) -> str:
        return translation.get_language_info(self.language)["name_local"]


def days_of(begin: dt.date, end: dt.date) -> list[dt.date]:
    return [begin + dt.timedelta(days=n) for n in range((end - begin).days + 1)]


def summary(address: str, begin: dt.date, end: dt.date) -> tuple[list[DayRow], DayRow]:
    found = {
        row[0]: row[1:]
        for row in DailyCounter.objects.for_sender(address)
        .filter(day__gte=begin, day__lte=end)
        .values_list("day", "total", *COUNTER_FIELDS)
    }
    zero = (0,) + (0,) * len(COUNTER_FIELDS)
    days = [
        DayRow(day, found.get(day, zero)[0], tuple(found.get(day, zero)[1:]))
        for day in days_of(begin, end)
    ]
    columns = [sum(day.counts[i] for day in days) for i in range(len(COUNTER_FIELDS))]
    return days, DayRow(None, sum(columns), tuple(columns))


# The Event fields behind DetailRow's, in its order (its sender_ip is the client IP).
EVENT_FIELDS = (
    "client_ip",
    "relay",
    "time",
    "queue_id",
    "status",
    "recipient",
    "next_hop",
    "response",
    "dsn",
)


# PostgreSQL: each event's time as ISO 8601 text in UTC, read by datetime.fromisoformat
# (C). Django's timestamptz loader for psycopg is pure Python (a subclass psycopg cannot
# swap for its C loader): with it the heaviest sender's report (19,785 rows, bench/report.py,
# 2026-12-03) took 248 ms instead of 128, 0.019 of zgrep's time where the target is 0.01.
# tests/queries/test_report.py pins the instants read.
ISO_TIME = Func(
    "time",
    template=(
        "to_char(%(expressions)s AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"+00:00\"')"
    ),
    output_field=CharField(),
)


def details(address: str, begin: dt.date, end: dt.date) -> list[DetailRow]:
    """Every counted event of the sender, oldest first, numbered from 1."""
    events = Event.objects.for_sender(address).between(begin, end).order_by("time", "id")
    if connection.vendor != "postgresql":
        rows = events.values_list(*EVENT_FIELDS)
        return [DetailRow(number, *values) for number, values in enumerate(rows, 1)]
    rows = events.values_list(*(ISO_TIME if name == "time" else name for name in EVENT_FIELDS))
    parse = dt.datetime.fromisoformat
    with transaction.atomic(), _without_bitmap_scans():
        return [
            DetailRow(number, ip, relay, parse(time), queue_id, status, rcpt, hop, reply, dsn)
            for number, (ip, relay, time, queue_id, status, rcpt, hop, reply, dsn) in enumerate(
                rows, 1
            )
        ]


@contextlib.contextmanager
def _without_bitmap_scans():
    """Plan the sender's events as a scan of the (sender, time) index (PostgreSQL).

    That index gives the rows already in time order, so only ties need sorting (by id).
    PostgreSQL's estimate of that scan is pessimistic (the index's first column, sender,
    says nothing of where its rows lie in the table, though they lie in time order as they
    were ingested), so it picks a bitmap scan and a sort of every row instead: 236 ms
    instead of 128 for the heaviest sender (bench/report.py, 2026-12-03), 0.018 of zgrep's
    time where the target is 0.01. The setting is the transaction's, put back after.
    """
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT current_setting('enable_bitmapscan'), "
            "set_config('enable_bitmapscan', 'off', true)"
        )
        before = cursor.fetchone()[0]
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SELECT set_config('enable_bitmapscan', %s, true)", [before])


_STATUS_DSN = operator.itemgetter(DetailRow._fields.index("status"), DetailRow._fields.index("dsn"))


def explanation_keys(rows: list[DetailRow]) -> set[str]:
    """The explanations the rows need; the reply text matters only where the code can't tell."""
    pairs = set(map(_STATUS_DSN, rows))  # a handful, whatever the number of rows
    signatures = {(status, dsn, "") for status, dsn in pairs if not explain.needs_text(status, dsn)}
    if wordy := {pair for pair in pairs if explain.needs_text(*pair)}:
        signatures |= {
            (row.status, row.dsn, row.response) for row in rows if (row.status, row.dsn) in wordy
        }
    return {explain.key_of(*signature) for signature in signatures} - {""}


def build_report(
    address: str,
    begin: dt.date,
    end: dt.date,
    client_ip: str = "",
    language: str = settings.LANGUAGE_CODE,
) -> Report:
    address = normalize_address(address)
    days, total = summary(address, begin, end)
    rows = details(address, begin, end)
    with translation.override(language):
        explanations = explain.explain(explanation_keys(rows))
    return Report(address, begin, end, client_ip or "", language, days, total, rows, explanations)


# Renderings


# Gmail cuts off a message whose body passes about 102 KB, and the explanations of the
# replies come after the rows: the mail without its CSV attachment stays under this.
MAIL_BYTES = 100_000


def context(report: Report, body_rows: int | None) -> dict:
    """What the templates show; body_rows: the most recent rows only (None: every row)."""
    shown = report.rows if body_rows is None else report.rows[len(report.rows) - body_rows :]
    columns = [column.label for column in COUNTERS]
    return {
        "report": report,
        "columns": columns,
        # In HTML a heading may break after its "_", so the summary fits a phone's width.
        "column_headings": [
            format_html("{}_<wbr>{}", *name.split("_", 1)) if "_" in name else name
            for name in columns
        ],
        "rows": shown,
        "hidden_rows": len(report.rows) - len(shown),
        "attached_csv": body_rows is not None,  # the mail; staff's text has every row
        "column_help": COLUMN_HELP,
        "site_url": settings.SITE_URL,
        "contact": settings.SMTPLOG_CONTACT_EMAIL,
        "date_format": DATE,
    }


def csv_filename(report: Report) -> str:
    return f"smtp-log-{report.begin:%Y%m%d}-{report.end:%Y%m%d}.csv"


def render_csv(report: Report) -> str:
    """Every detail row; headers in the report's language. UTF-8 with a BOM for Excel."""
    out = io.StringIO()
    writer = csv.writer(out)
    with translation.override(report.language):
        writer.writerow(
            [
                _("No."),
                _("Sender IP"),
                _("SMTP Relay"),
                _("Time"),
                _("ID"),
                _("Status"),
                _("Response Message"),
            ]
        )
    for row in report.rows:
        writer.writerow(
            [
                row.number,
                row.sender_ip or "",
                row.relay,
                timezone.localtime(row.time).strftime(TIME),
                row.queue_id,
                row.status,
                row.message,
            ]
        )
    return "\ufeff" + out.getvalue()


def render_json(report: Report) -> dict:
    def day(row: DayRow) -> dict:
        return {
            "date": row.day.isoformat() if row.day else "total",
            "sum": row.total,
            **dict(zip(COUNTER_FIELDS, row.counts, strict=True)),
        }

    return {
        "header": {
            "email": report.address,
            "begin": report.begin.isoformat(),
            "end": report.end.isoformat(),
            "client_ip": report.client_ip,
            "language": report.language,
        },
        "summary": [day(row) for row in report.days] + [day(report.total)],
        "details": [
            {
                "no": r.number,
                "sender_ip": r.sender_ip or "",
                "relay": r.relay,
                "time": timezone.localtime(r.time).isoformat(),
                "queue_id": r.queue_id,
                "status": r.status,
                "response": r.message,
            }
            for r in report.rows
        ],
        "explanations": [{"code": e.code, "text": e.text} for e in report.explanations],
    }


def render_text(report: Report) -> str:
    """The whole report as the email's text part, every detail row included, for staff.

    Worded for staff: no client IP (nobody asked through the form) and no closing words
    to the address's owner; it says that nothing was sent.
    """
    with translation.override(report.language):
        return render_to_string(
            "emails/report-body.txt", {**context(report, None), "for_staff": True}
        )


def report_message(report: Report) -> EmailMultiAlternatives:
    """The email: to the address the report describes, and only to it.

    The body shows the most recent SMTPLOG_REPORT_BODY_ROWS rows, fewer when their replies
    are so long that the message would pass MAIL_BYTES (measured, not estimated); the CSV
    attached holds every row.
    """
    shown = min(settings.SMTPLOG_REPORT_BODY_ROWS, len(report.rows))
    while True:
        message = make_message("report", report.address, context(report, shown), report.language)
        size = len(message.message().as_bytes())
        if size < MAIL_BYTES or shown == 0:
            break
        shown = min(shown - 1, int(shown * 0.95 * MAIL_BYTES / size))
    message.attach(csv_filename(report), render_csv(report).encode(), "text/csv")
    return message

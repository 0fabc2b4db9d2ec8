"""The report mail as a heavy sender gets it: its size, and how it reads on a phone."""

from __future__ import annotations

import datetime as dt

import pytest

from queries.report import MAIL_BYTES, build_report, report_message
from smtplog.models import Status
from smtplog.store import add_events
from tests.browser import PHONE, browser
from tests.conftest import NOW, make_event

pytestmark = pytest.mark.django_db
HEAVY = "heavy@cs.nthu.edu.tw"
BEGIN = NOW.date() - dt.timedelta(days=30)

# Replies as real receiving servers write them (Gmail, Microsoft), long ones included.
GMAIL_OK = "250 2.0.0 OK  1763600000 d2e1a72fcca58-7b9f1c0e1a3si1234567b3a.{n} - gsmtp"
GMAIL_NO_SUCH_USER = (
    "host gmail-smtp-in.l.google.com[142.250.157.27] said: 550-5.1.1 The email account that "
    "you tried to reach does not exist. Please try 550-5.1.1 double-checking the recipient's "
    "email address for typos or 550-5.1.1 unnecessary spaces. For more information, go to "
    "550 5.1.1  https://support.google.com/mail/?p=NoSuchUser d2e1a72fcca58-7b9f1c0e1a3si"
    "{n}b3a.100 - gsmtp (in reply to RCPT TO command)"
)
OUTLOOK_BLOCK = (
    "host outlook-com.olc.protection.outlook.com[52.101.68.{m}] said: 550 5.7.1 "
    "Unfortunately, messages from [140.114.64.{m}] weren't sent. Please contact your Internet "
    "service provider since part of their network is on our block list (S3150). You can also "
    "refer your provider to http://mail.live.com/mail/troubleshooting.aspx#errors. "
    "[SG2PEPF000{n}.apcprd02.prod.outlook.com] (in reply to MAIL FROM command)"
)


@pytest.fixture
def heavy_sender(db) -> int:
    """1,200 events over the month, a third of them long bounces, and a few huge replies."""
    events = []
    for n in range(1200):
        time = NOW - dt.timedelta(minutes=36 * (1200 - n))
        if n % 3 == 0:
            status, dsn, reply = Status.BOUNCED, "5.1.1", GMAIL_NO_SUCH_USER.format(n=n)
        elif n % 3 == 1:
            status, dsn, reply = Status.BOUNCED, "5.7.1", OUTLOOK_BLOCK.format(n=n, m=n % 250)
        else:
            status, dsn, reply = Status.SENT, "2.0.0", GMAIL_OK.format(n=n)
        if n % 97 == 0:  # a reply longer than a mail line may be (998 bytes)
            reply = (reply + " ") * 6
        events.append(
            make_event(
                HEAVY,
                status,
                time,
                recipient=f"student{n}.someone@gmail.com",
                next_hop="gmail-smtp-in.l.google.com[142.250.157.27]:25",
                dsn=dsn,
                response=reply,
                client_ip="140.114.63.228",
                queue_id=f"4Zx{n:09d}",
            )
        )
    add_events(events)
    return len(events)


def without_attachment(message) -> bytes:
    message.attachments = []
    return message.message().as_bytes()


@pytest.mark.parametrize("language", ["en", "zh-hant"])
def test_the_mail_stays_under_100_kb_for_the_largest_body_the_setting_allows(
    heavy_sender, settings, language
):
    settings.SMTPLOG_REPORT_BODY_ROWS = 1000  # the setting's maximum
    report = build_report(HEAVY, BEGIN, NOW.date(), language=language)
    message = report_message(report)
    (name, content, mimetype) = message.attachments[0]
    assert content.count("\n") == 1 + heavy_sender  # the CSV: every row
    size = len(without_attachment(message))
    assert size < MAIL_BYTES <= 100_000
    html = message.alternatives[0][0]
    shown = html.count('<td class="n">')
    assert 40 < shown < heavy_sender  # as many recent rows as fit
    assert f'<td class="n">{heavy_sender}</td>' in html  # the most recent one among them
    assert ' style="' not in html and "<style>" in html  # styles once, not per cell
    assert size > 0.8 * MAIL_BYTES  # and nearly the whole budget used for them


def test_by_default_the_most_recent_rows_of_a_heavy_sender_fill_the_body(db, settings):
    """Mostly deliveries with Gmail's short replies: the default number of rows fits."""
    add_events(
        [
            make_event(
                HEAVY,
                Status.SENT,
                NOW - dt.timedelta(minutes=5 * n),
                recipient=f"student{n}.someone@gmail.com",
                next_hop="gmail-smtp-in.l.google.com[142.250.157.27]:25",
                dsn="2.0.0",
                response=GMAIL_OK.format(n=n),
                client_ip="140.114.63.228",
                queue_id=f"4Zx{n:09d}",
            )
            for n in range(600)
        ]
    )
    message = report_message(build_report(HEAVY, BEGIN, NOW.date()))
    assert len(without_attachment(message)) < MAIL_BYTES
    html = message.alternatives[0][0]
    assert html.count('<td class="n">') == settings.SMTPLOG_REPORT_BODY_ROWS == 150
    assert "Only the most recent 150 of 600 rows are shown here: No. 451 to 600" in html


@pytest.mark.browser
def test_the_mail_reads_on_a_390_px_phone(heavy_sender):
    html = report_message(build_report(HEAVY, BEGIN, NOW.date(), language="zh-hant"))
    html = html.alternatives[0][0]
    with browser(locale="zh-TW", **PHONE) as page:
        page.set_content(html)
        width = page.evaluate("document.documentElement.clientWidth")
        assert width == 390
        # Nothing makes the page itself scroll sideways; the summary fits whole.
        assert page.evaluate("document.documentElement.scrollWidth") <= width
        assert (
            page.evaluate("document.querySelector('.summary').getBoundingClientRect().right")
            <= width
        )
        # The detail table scrolls inside its box.
        box = page.evaluate(
            "(() => { const d = document.querySelector('.scroll'); "
            "return [d.getBoundingClientRect().right, d.scrollWidth, d.clientWidth]; })()"
        )
        assert box[0] <= width and box[1] > box[2]
        # The detail table's headings stay on one line (編號 was one character a line).
        lines = page.evaluate(
            "[...document.querySelectorAll('.detail thead th')].map(th => { const r = "
            "document.createRange(); r.selectNodeContents(th); "
            "return [th.textContent, new Set([...r.getClientRects()].map(x => x.top)).size]; })"
        )
        assert [text for text, count in lines if count != 1] == []
        assert "編號" in [text for text, count in lines]

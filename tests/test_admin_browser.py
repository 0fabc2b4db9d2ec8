"""The staff pages as a person sees them at a laptop's 1280 px, in Debian's chromium.

The site is pytest-django's live server (in this process, on the test database); the
browser gets a logged-in staff session's cookie. Every row is written before the browser
starts: Playwright's sync API runs an event loop in the test's thread, where Django
refuses ORM calls.
"""

from __future__ import annotations

import contextlib
import datetime as dt

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone

from queries.models import Query
from smtplog.models import Event, LogFile, Message, Status
from smtplog.store import add_events
from tests.conftest import make_event
from tests.services import require_chromium

pytestmark = [pytest.mark.browser, pytest.mark.slow]
LAPTOP = {"width": 1280, "height": 800}
LONG_REPLY = (
    "550 5.7.1 Service unavailable, Client host [140.114.63.228] blocked using Spamhaus. "
    "To request removal from this list see https://www.spamhaus.org/query/ip/140.114.63.228 "
    "(AS3130) [SG2PEPF000B66CB.apcprd03.prod.outlook.com 2026-11-19T02:01:50.123Z 08DCF5C3]"
)


@pytest.fixture
def staff_cookie(live_server) -> dict:
    user = User.objects.create_superuser("opr", "opr@nthu.edu.tw", "not-used")
    client = Client()
    client.force_login(user)
    return {"name": "sessionid", "value": client.cookies["sessionid"].value, "url": live_server.url}


@pytest.fixture
def a_busy_afternoon(live_server) -> None:
    start = timezone.now().replace(microsecond=0) - dt.timedelta(hours=3)
    senders = [
        "grace.tseng@math.nthu.edu.tw",
        "s107895591@m107.nthu.edu.tw",
        "lab-server@phys.nthu.edu.tw",
        "noreply@nthu.edu.tw",
    ]
    events = []
    for n in range(120):
        sender = senders[n % len(senders)]
        bounced = n % 7 == 0
        events.append(
            make_event(
                sender,
                Status.BOUNCED if bounced else Status.SENT,
                start + dt.timedelta(seconds=37 * n),
                relay=f"smtp{n % 3 + 1}",
                queue_id=f"4Xk{n:04d}Qw2zz8Lm",
                client_ip="2001:288:1001:abcd:1234:5678:9abc:def0",
                recipient=f"chen.yu-ting.{n}@mail.department-of-physics.example.com.tw",
                next_hop="outlook-com.olc.protection.outlook.com[52.101.68.0]:25",
                dsn="5.7.1" if bounced else "2.0.0",
                response=LONG_REPLY
                if bounced
                else f"250 2.6.0 <{n}@nthu.edu.tw> [InternalId=1234] Queued mail for delivery",
            )
        )
    add_events(events)
    Message.objects.bulk_create(
        Message(
            relay="smtp1",
            queue_id=f"4Xk{n:04d}Qw2zz8Lm",
            first_seen=start + dt.timedelta(seconds=37 * n),
            sender=senders[n % len(senders)],
            client_ip="2001:288:1001:abcd:1234:5678:9abc:def0",
            sasl_username=senders[n % len(senders)],
            message_id=f"<CAF=abc{n}xyz@mail.gmail.com>",
            nrcpt=3,
            removed_at=start + dt.timedelta(seconds=37 * n + 2),
        )
        for n in range(40)
    )
    for n, address in enumerate(senders):
        Query.objects.create(
            address=address,
            begin=start.date() - dt.timedelta(days=30),
            end=start.date(),
            client_ip="2001:288:1001:abcd:1234:5678:9abc:def0" if n % 2 else "140.114.63.228",
            language="zh-hant",
            created=start + dt.timedelta(minutes=n),
            outcome=Query.Outcome.SENT,
            attempts=1,
            sent_at=start + dt.timedelta(minutes=n, seconds=3),
        )


@contextlib.contextmanager
def laptop_browser(cookie: dict):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=require_chromium(), headless=True, args=["--no-sandbox"]
        )
        try:
            context = chromium.new_context(viewport=LAPTOP, locale="en-US")
            context.add_cookies([cookie])
            yield context.new_page()
        finally:
            chromium.close()


def headers(page) -> list[str]:
    return [
        text.strip()
        for text in page.locator("#result_list thead th").all_text_contents()
        if text.strip()
    ]


def fits_the_window(page) -> bool:
    """No sideways scrolling: neither the page nor the list's own scroll box."""
    return page.evaluate(
        """() => {
            const box = document.querySelector('#changelist .results');
            const table = document.querySelector('#result_list');
            return document.documentElement.scrollWidth <= window.innerWidth
                && box.scrollWidth <= box.clientWidth
                && table.getBoundingClientRect().right <= window.innerWidth;
        }"""
    )


def row_heights(page) -> set[int]:
    return set(
        page.evaluate("""() => [...document.querySelectorAll('#result_list tbody tr')]
        .map(row => Math.round(row.getBoundingClientRect().height))""")
    )


def test_the_event_list_shows_what_a_person_scans_for_and_the_page_the_rest(
    live_server, staff_cookie, a_busy_afternoon
):
    require_chromium()
    first = Event.objects.order_by("-pk").first()
    with laptop_browser(staff_cookie) as page:
        page.goto(f"{live_server.url}/admin/smtplog/event/")

        assert headers(page) == ["Time", "Status", "Sender", "Recipient", "Response"]
        assert fits_the_window(page)
        # At most two lines an event (a long address breaks once); the reply on one.
        assert max(row_heights(page)) < 70
        reply = page.locator("#result_list .field-short_response .reply").first
        assert reply.get_attribute("title") == first.response  # the whole reply on hover
        assert page.locator("#result_list tbody tr").count() == 100

        page.locator("#result_list tbody tr th a").first.click()
        page.wait_for_load_state()
        detail = page.inner_text("#content-main")
        for value in (first.relay, first.queue_id, first.client_ip, first.dsn, first.response):
            assert value in detail


def test_the_query_list_fits_with_ipv6_clients_and_long_addresses(
    live_server, staff_cookie, a_busy_afternoon
):
    require_chromium()
    with laptop_browser(staff_cookie) as page:
        page.goto(f"{live_server.url}/admin/queries/query/")

        assert headers(page) == [
            "Asked at",
            "Email address",
            "Days",
            "Outcome",
            "Client IP",
            "Sent by staff",
        ]
        assert fits_the_window(page)
        page.locator("#result_list tbody tr th a").first.click()
        page.wait_for_load_state()
        detail = page.inner_text("#content-main")
        assert "Language" in detail and "zh-hant" in detail and "Attempts" in detail


def test_the_message_list_fits_and_its_page_has_the_rest(
    live_server, staff_cookie, a_busy_afternoon
):
    require_chromium()
    with laptop_browser(staff_cookie) as page:
        page.goto(f"{live_server.url}/admin/smtplog/message/")

        assert headers(page) == [
            "First seen",
            "Relay",
            "Queue ID",
            "Sender",
            "Recipients",
            "Removed",
        ]
        assert fits_the_window(page)
        assert len(row_heights(page)) == 1  # one line each
        page.locator("#result_list tbody tr th a").first.click()
        page.wait_for_load_state()
        detail = page.inner_text("#content-main")
        assert "2001:288:1001:abcd:1234:5678:9abc:def0" in detail
        assert "<CAF=abc39xyz@mail.gmail.com>" in detail


def test_the_search_box_says_what_it_matches_and_a_prefix_finds_the_sender(
    live_server, staff_cookie, a_busy_afternoon
):
    require_chromium()
    with laptop_browser(staff_cookie) as page:
        page.goto(f"{live_server.url}/admin/smtplog/event/")
        help_text = page.inner_text("#searchbar_helptext")
        assert "the start of a sender or recipient address" in help_text

        page.fill("#searchbar", "Grace")
        page.press("#searchbar", "Enter")
        page.wait_for_load_state()

        senders = set(page.locator("#result_list td.field-sender").all_text_contents())
        assert senders == {"grace.tseng@math.nthu.edu.tw"}
        assert "30 results" in page.inner_text("#changelist-search")
        assert "30 events" in page.inner_text("p.paginator")


def test_the_dashboard_folds_rotated_files_and_fits_the_window(live_server, staff_cookie):
    require_chromium()
    now = timezone.now()
    for relay in ("smtp1", "smtp2", "smtp3"):
        for n in range(32):  # the live file and a month of rotated ones
            path = f"/var/log/relays/{relay}/mail.log" + (f".{n}.gz" if n > 1 else ".1" * n)
            LogFile.objects.create(
                fingerprint=f"{relay}-{n}",
                path=path,
                position=400_000,
                size=400_000,
                lines=2500,
                last_line_time=now - dt.timedelta(days=n, seconds=20),
            )
    LogFile.objects.filter(path="/var/log/relays/smtp2/mail.log.4.gz").update(
        last_error="EOFError: Compressed file ended before the end-of-stream marker"
    )
    with laptop_browser(staff_cookie) as page:
        page.goto(f"{live_server.url}/admin/dashboard/")

        rows = page.locator("table.logs > tbody > tr")
        assert rows.count() == 3
        assert rows.first.locator("td").first.inner_text() == "/var/log/relays/smtp2/mail.log"
        assert "31 rotated files (1 stuck)" in rows.first.inner_text()
        assert page.locator("table.logs details:not([open])").count() == 3
        # smtp2's stuck file is shown outside its folded list.
        stuck = rows.first.locator(".stuck-file").inner_text()
        assert "mail.log.4.gz" in stuck and "EOFError: Compressed file ended" in stuck
        assert page.evaluate("document.documentElement.scrollWidth") <= LAPTOP["width"]
        # Folded, a relay's month of files takes a line or two, not 31 rows.
        assert rows.first.bounding_box()["height"] < 150
        assert rows.nth(1).bounding_box()["height"] < 100
        assert rows.nth(2).bounding_box()["height"] < 100

"""Staff in a real browser (Debian's chromium): log in, search, open a message, follow
the content filter's link, in English and in Traditional Chinese."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from smtplog.models import Event, Message, Status
from tests.queries.test_e2e import browser
from tracing.models import Look

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture
def message(transactional_db, django_user_model) -> dict[str, Message]:
    """A staff account, and a message of an hour ago through the content filter, sent."""
    django_user_model.objects.create_user("opr", password="a good staff password", is_staff=True)
    t = timezone.now() - dt.timedelta(hours=1)
    fields = {"relay": "smtp1", "sender": "alice@cs.nthu.edu.tw", "client_ip": "140.114.63.228"}
    first = Message.objects.create(
        queue_id="4AA091855DA0",
        first_seen=t,
        client_name="pc.cs.nthu.edu.tw",
        message_id="ca10035e@cs.nthu.edu.tw",
        removed_at=t + dt.timedelta(seconds=1),
        **fields,
    )
    requeued = Message.objects.create(
        queue_id="776E41855DB2",
        first_seen=t + dt.timedelta(seconds=1),
        origin=first,
        removed_at=t + dt.timedelta(seconds=3),
        **fields,
    )
    Event.objects.create(
        time=t + dt.timedelta(seconds=2),
        day=timezone.localdate(t),
        status=Status.BOUNCED,
        message=requeued,
        queue_id="776E41855DB2",
        recipient="carol@example.org",
        next_hop="mx.example.org[192.0.2.26]:25",
        dsn="5.1.1",
        response="550 5.1.1 <carol@example.org> User unknown",
        **fields,
    )
    return {"first": first, "requeued": requeued}


def trace_in_browser(base_url: str, locale: str, words: dict, pages: dict) -> dict[str, str]:
    """Log in, search by queue ID, open the message, follow the filter link there and
    back: the texts of the result list and of the two pages."""
    with browser(locale=locale) as page:
        page.goto(f"{base_url}/admin/trace/")
        assert "/admin/login/" in page.url  # staff only: the admin's login first
        page.fill("#id_username", "opr")
        page.fill("#id_password", "a good staff password")
        page.locator("input[type=submit]").click()
        page.wait_for_load_state()
        assert page.url.endswith("/admin/trace/")
        assert words["title"] in page.title()
        page.fill("#id_queue_id", "776E41855DB2")
        page.get_by_role("button", name=words["search"]).click()
        page.wait_for_load_state()
        results = page.inner_text("#result_list")
        page.get_by_role("link", name="4AA091855DA0 → 776E41855DB2").click()
        page.wait_for_load_state()
        assert page.url.endswith(pages["first"])
        first = page.inner_text("#content-main")
        page.locator("dd.hops").get_by_role("link", name="776E41855DB2").click()
        page.wait_for_load_state()
        assert page.url.endswith(pages["requeued"])
        requeued = page.inner_text("#content-main")
        page.locator("dd.hops").get_by_role("link", name="4AA091855DA0").click()
        page.wait_for_load_state()
        assert page.url.endswith(pages["first"])
    return {"results": results, "first": first, "requeued": requeued}


@pytest.mark.parametrize(
    ("locale", "words"),
    [
        (
            "en-US",
            {
                "title": "Message trace",
                "search": "Search",
                "bounced": "bounced",
                "path": "Its path",
                "explained": "The recipient address does not exist",
            },
        ),
        (
            "zh-TW",
            {
                "title": "郵件追蹤",
                "search": "搜尋",
                "bounced": "退信",
                "path": "這封信的經過",
                "explained": "收件人地址不存在",
            },
        ),
    ],
)
def test_staff_search_and_open_a_message_in_both_languages(live_server, message, locale, words):
    pages = {name: f"/admin/trace/message/{m.pk}/" for name, m in message.items()}
    texts = trace_in_browser(live_server.url, locale, words, pages)

    assert "alice@cs.nthu.edu.tw" in texts["results"] and words["bounced"] in texts["results"]
    for page in (texts["first"], texts["requeued"]):
        assert words["path"] in page and words["explained"] in page
        assert "550 5.1.1 <carol@example.org> User unknown" in page
        assert "<ca10035e@cs.nthu.edu.tw>" in page
    kinds = [look.kind for look in Look.objects.order_by("id")]
    assert kinds == ["search", "message", "message", "message"]
    assert {look.username for look in Look.objects.all()} == {"opr"}

"""End to end: gunicorn, a real Celery worker on Redis, an SMTP server, headless chromium.

The site runs the production settings (a real captcha: the test reads its answer from
the database by the key on the page) against the test database, so these tests use
PostgreSQL and `transactional_db`; Redis is a throwaway server of the test's own, which
the outage test stops and starts again (the machine's shared Redis is never touched).
"""

from __future__ import annotations

import csv
import datetime as dt
import email
import http.cookiejar
import io
import json
import re
import time
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from email import policy
from pathlib import Path

import pytest
from captcha.models import CaptchaStore
from django.db import connection
from django.utils import timezone

from queries.models import Query
from smtplog.models import Status
from smtplog.store import add_events
from tests.browser import browser
from tests.conftest import TZ, make_event
from tests.queries.processes import gunicorn, redis_server, saved_mail, smtp_sink
from tests.worker import database_url, running_worker, wait_until

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.redis,
    pytest.mark.worker,
    pytest.mark.browser,
    pytest.mark.slow,
]

ADDRESS = "mei@cs.nthu.edu.tw"


@pytest.fixture
def events(transactional_db) -> dict[dt.date, int]:
    """mei: 3 events yesterday (2 sent, 1 bounced), 1 deferral today; ken: 1 sent."""
    now = timezone.now()
    yesterday = now - dt.timedelta(days=1)
    add_events(
        [
            make_event(
                ADDRESS,
                Status.SENT,
                yesterday,
                recipient="a@example.com",
                next_hop="mx.example.com[192.0.2.25]:25",
                dsn="2.0.0",
                response="250 2.0.0 Ok: queued as AAA",
                client_ip="140.114.63.228",
            ),
            make_event(
                ADDRESS,
                Status.SENT,
                yesterday + dt.timedelta(seconds=1),
                recipient="b@example.com",
                dsn="2.0.0",
                response="250 2.0.0 Ok",
            ),
            make_event(
                ADDRESS,
                Status.BOUNCED,
                yesterday + dt.timedelta(seconds=2),
                recipient="c@example.com",
                dsn="5.1.1",
                response="550 5.1.1 <c@example.com>: User unknown",
            ),
            # The first second of today (local): "today" whatever the time the test runs.
            make_event(
                ADDRESS,
                Status.DEFERRED,
                now.astimezone(TZ).replace(hour=0, minute=0, second=1, microsecond=0),
                recipient="d@example.com",
                dsn="4.2.2",
                response="452 4.2.2 Mailbox full",
            ),
            make_event("ken@ee.nthu.edu.tw", Status.SENT, yesterday, recipient="k@example.com"),
        ]
    )
    return {yesterday.astimezone(TZ).date(): 3, now.astimezone(TZ).date(): 1}


def site_env(broker_url: str, smtp_port: int) -> dict[str, str]:
    return {
        "DJANGO_SETTINGS_MODULE": "smtplog.settings",
        "DATABASE_URL": database_url(),
        "CELERY_BROKER_URL": broker_url,
        "EMAIL_HOST": "127.0.0.1",
        "EMAIL_PORT": str(smtp_port),
        "SMTPLOG_SEND_RETRY_BACKOFF": "1",  # the first retry within a second or so
        "PYTHONUNBUFFERED": "1",
    }


def captcha_answer(key: str) -> str:
    """The answer of the challenge on the page, read in a thread of its own.

    Playwright's sync API runs an event loop in the test's thread, where Django refuses
    ORM calls; a short-lived thread with its own connection, closed after, is plain sync.
    """

    def read() -> str:
        try:
            return CaptchaStore.objects.get(hashkey=key).response
        finally:
            connection.close()

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(read).result()


def ask_in_chinese(page, base_url: str, address: str) -> str:
    """Switch the site to Chinese, fill the form as a user would, submit; the answer's text."""
    page.goto(f"{base_url}/")
    page.get_by_role("button", name="繁體中文").click()
    page.wait_for_load_state()
    assert "SMTP 寄信紀錄查詢系統" in page.title()
    assert page.is_checked("#id_language_1")  # the form follows the page's language
    page.fill("#id_email", address)
    key = page.input_value("#id_captcha_0")
    page.fill("#id_captcha_1", captcha_answer(key))
    page.get_by_role("button", name="送出").click()
    page.wait_for_load_state()
    return page.inner_text("main")


def ask_by_http(base_url: str, address: str) -> str:
    opener = urllib.request.build_opener(
        urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar())
    )
    form = opener.open(f"{base_url}/").read().decode()

    def value(name: str) -> str:
        return re.search(rf'name="{name}" value="([^"]*)"', form)[1]

    data = {
        name: value(name) for name in ("csrfmiddlewaretoken", "token", "begin", "end", "captcha_0")
    }
    data.update(
        email=address,
        language="en",
        captcha_1=CaptchaStore.objects.get(hashkey=data["captcha_0"]).response,
    )
    request = urllib.request.Request(f"{base_url}/", data=urllib.parse.urlencode(data).encode())
    return opener.open(request).read().decode()


def read_mail(path: Path) -> tuple[dict, email.message.EmailMessage]:
    envelope = json.loads(path.with_suffix(".json").read_text())
    return envelope, email.message_from_bytes(path.read_bytes(), policy=policy.default)


def summary_line(day: dt.date | str, counts: dict[str, int]) -> str:
    columns = [
        counts.get(c, 0) for c in ("auth_blk", "auth_rcv", "bounced", "deferred", "expired", "sent")
    ]
    label = day if isinstance(day, str) else f"{day:%Y/%m/%d}"
    return f"{label:<10} {sum(columns):>8}" + "".join(f" {n:>8}" for n in columns)


def test_a_user_asks_in_chinese_and_one_mail_reaches_that_address(redis_program, events, tmp_path):
    yesterday, today = sorted(events)
    with (
        redis_server(redis_program, tmp_path) as redis,
        smtp_sink(tmp_path) as smtp_port,
        gunicorn(site_env(redis.url, smtp_port), tmp_path) as base_url,
        running_worker(
            redis.url, extra_env=site_env(redis.url, smtp_port), queues=["celery"]
        ) as worker,
        browser(locale="zh-TW") as page,
    ):
        answer = ask_in_chinese(page, base_url, ADDRESS)
        assert "已收到報表申請" in answer and ADDRESS in answer
        wait_until(lambda: saved_mail(tmp_path), timeout=60, what="the report", worker=worker)
        time.sleep(2)  # nothing else may follow
        mails = saved_mail(tmp_path)

    assert len(mails) == 1
    envelope, message = read_mail(mails[0])
    assert envelope["rcpt_tos"] == [ADDRESS] and message["To"] == ADDRESS
    assert message["Cc"] is None and message["Bcc"] is None
    assert message["Auto-Submitted"] == "auto-generated"
    # (a folded encoded header decodes with a leading space; mail programs drop it)
    assert message["Subject"].strip().startswith(f"SMTP 寄信紀錄報表：{ADDRESS}")
    text = message.get_body(("plain",)).get_content()
    html = message.get_body(("html",)).get_content()
    for part in (text, html):
        assert "統計摘要" in part and "詳細紀錄" in part and "繁體中文" in part
        assert "收件人地址不存在" in part  # 5.1.1 explained in Chinese
        assert "ken@" not in part and "k@example.com" not in part
    assert summary_line(yesterday, {"sent": 2, "bounced": 1}) in text
    assert summary_line(today, {"deferred": 1}) in text
    assert summary_line("總計", {"sent": 2, "bounced": 1, "deferred": 1}) in text
    (attachment,) = message.iter_attachments()
    assert attachment.get_content_type() == "text/csv"
    rows = list(csv.reader(io.StringIO(attachment.get_content().lstrip("\ufeff"))))
    assert rows[0] == ["編號", "寄件端 IP", "外寄伺服器", "時間", "佇列編號", "狀態", "回應訊息"]
    assert [(r[0], r[5]) for r in rows[1:]] == [
        ("1", "sent"),
        ("2", "sent"),
        ("3", "bounced"),
        ("4", "deferred"),
    ]
    query = Query.objects.get()
    assert (query.outcome, query.language, query.attempts) == ("sent", "zh-hant", 1)


def test_a_451_is_retried_and_the_report_delivered_once(redis_program, events, tmp_path):
    with (
        redis_server(redis_program, tmp_path) as redis,
        smtp_sink(tmp_path, fail_first=1) as smtp_port,
        gunicorn(site_env(redis.url, smtp_port), tmp_path) as base_url,
        running_worker(
            redis.url, extra_env=site_env(redis.url, smtp_port), queues=["celery"]
        ) as worker,
    ):
        assert "Report requested" in ask_by_http(base_url, ADDRESS)
        wait_until(
            lambda: Query.objects.filter(outcome="sent").exists(),
            timeout=60,
            what="the report to be sent after a retry",
            worker=worker,
        )
        time.sleep(2)
        mails = saved_mail(tmp_path)
        log = worker.log()

    assert len(mails) == 1
    envelope, message = read_mail(mails[0])
    assert envelope["rcpt_tos"] == [ADDRESS]
    assert message["Subject"].strip().startswith(f"SMTP log report for {ADDRESS}")
    query = Query.objects.get()
    assert query.attempts == 2 and query.error == ""  # the last attempt succeeded
    assert "transient send failure, retry in " in log and "SMTPDataError: 451 4.3.0" in log
    assert "Retry in" in log and ADDRESS not in log  # logs name the query by id only


def test_with_redis_down_the_user_sees_the_delay_page_and_gets_one_mail_later(
    redis_program, events, tmp_path
):
    with (
        redis_server(redis_program, tmp_path) as redis,
        smtp_sink(tmp_path) as smtp_port,
        gunicorn(site_env(redis.url, smtp_port), tmp_path) as base_url,
    ):
        redis.stop()
        with browser(
            locale="zh-TW", viewport={"width": 390, "height": 844}, is_mobile=True
        ) as page:  # on a phone
            answer = ask_in_chinese(page, base_url, ADDRESS)
        assert "報表將延遲寄送" in answer
        query = Query.objects.get()
        assert (query.outcome, query.attempts) == ("pending", 0)

        redis.start()  # Redis is back; the periodic sweeper finds the query
        with running_worker(
            redis.url, extra_env=site_env(redis.url, smtp_port), queues=["celery"]
        ) as worker:
            worker.send("queries.tasks.sweep_pending_queries", 0)
            wait_until(
                lambda: Query.objects.filter(outcome="sent").exists(),
                timeout=60,
                what="the swept query to be sent",
                worker=worker,
            )
            worker.send("queries.tasks.sweep_pending_queries", 0)  # a second sweep: nothing
            wait_until(
                lambda: "0 re-enqueued" in worker.log(),
                timeout=30,
                what="the second sweep",
                worker=worker,
            )
            time.sleep(1)
            mails = saved_mail(tmp_path)

    assert len(mails) == 1
    envelope, message = read_mail(mails[0])
    assert envelope["rcpt_tos"] == [ADDRESS]
    assert message["Subject"].strip().startswith("SMTP 寄信紀錄報表")
    assert Query.objects.get().attempts == 1

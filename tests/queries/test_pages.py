"""The pages as people meet them, in headless chromium: both languages, a phone, axe-core.

The site runs in the test process (pytest-django's live_server, the test settings: the
captcha's test answer "passed" is accepted). Playwright's sync API runs an event loop in
the test's thread, where Django refuses ORM calls: the database is read and written in a
short-lived thread of its own (db()).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connection
from django.utils import timezone

from queries.models import Query
from tests.browser import PHONE, axe_violations, browser

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
LOCALES = {"en": "en-US", "zh-hant": "zh-TW"}
ERROR_TITLE = {"en": "Error: ", "zh-hant": "錯誤："}
TOKEN = "0123456789abcdef0123456789abcdef"


def db(function, *args):
    """Run function(*args) with the ORM, outside Playwright's event loop."""

    def run():
        try:
            return function(*args)
        finally:
            connection.close()

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(run).result()


def pending_query(token: str = TOKEN) -> Query:
    today = timezone.localdate()
    return Query.objects.create(
        address="mei@cs.nthu.edu.tw",
        begin=today - dt.timedelta(days=3),
        end=today,
        client_ip="127.0.0.1",
        client_net="127.0.0.1",
        language="en",
        created=timezone.now(),
        form_token=token,
    )


def fill_form(page, address: str = "mei@cs.nthu.edu.tw", code: str = "passed") -> None:
    page.fill("#id_email", address)
    page.fill("#id_captcha_1", code)


def check(page, problems: list[str], where: str) -> None:
    problems += [f"{where}: {v}" for v in axe_violations(page)]


@pytest.mark.parametrize("language", ["en", "zh-hant"])
def test_every_page_has_no_serious_accessibility_violation(live_server, settings, language):
    """axe-core on each page of the site, in each language: 0 serious or critical."""
    db(pending_query)
    base = live_server.url
    problems: list[str] = []
    with browser(locale=LOCALES[language]) as page:
        page.goto(f"{base}/")
        assert page.evaluate("document.documentElement.lang") == language
        check(page, problems, "form")
        fill_form(page, address="someone@example.com", code="wrong")
        page.click("button.primary")
        page.wait_for_load_state()
        assert page.locator(".error-summary").count() == 1
        check(page, problems, "form with errors")
        fill_form(page)
        page.click("button.primary")
        page.wait_for_url(f"{base}/answer/**")
        check(page, problems, "answer")
        page.goto(f"{base}/answer/{TOKEN}/?delayed")
        check(page, problems, "delayed")
        page.goto(f"{base}/answer/ffffffffffffffffffffffffffffffff/")
        check(page, problems, "answer gone")
        page.goto(f"{base}/help/")
        check(page, problems, "help")
        settings.SMTPLOG_LIMIT_PER_ADDRESS = 1
        page.goto(f"{base}/")
        fill_form(page)
        page.click("button.primary")
        page.wait_for_url(f"{base}/answer/**")
        assert page.locator("h1").inner_text() in ("Too many requests", "請求次數過多")
        check(page, problems, "limited")
        settings.SMTPLOG_CAMPUS_NETWORKS = [ipaddress.ip_network("192.0.2.0/24")]
        page.goto(f"{base}/")
        assert page.locator("h1").inner_text() in ("Campus network only", "僅限校園網路使用")
        check(page, problems, "off campus")
        page.goto(f"{base}/admin/login/")
        check(page, problems, "staff sign-in")
    assert problems == []


@pytest.mark.parametrize("language", ["en", "zh-hant"])
def test_a_failed_submit_is_announced(live_server, language):
    with browser(locale=LOCALES[language]) as page:
        page.goto(f"{live_server.url}/")
        page.fill("#id_email", "someone@example.com")
        page.fill("#id_begin", "2001-01-01")
        page.click("button.primary")
        page.wait_for_load_state()
        assert page.title().startswith(ERROR_TITLE[language])
        focused = page.evaluate("document.activeElement.className")
        assert focused == "error-summary"
        assert page.get_attribute(".error-summary", "role") == "alert"
        # Each field with an error names its error: its aria-describedby holds the id of
        # the error list shown beside it.
        described = page.evaluate(
            "[...document.querySelectorAll('[aria-invalid=true]:not([type=hidden])')].map(e => "
            "[e.id, (e.getAttribute('aria-describedby') || '').split(' ').filter(id => "
            "document.getElementById(id)?.matches('ul.errorlist')).map(id => "
            "document.getElementById(id).textContent)])"
        )
        errors = dict(described)
        assert set(errors) == {"id_email", "id_begin", "id_captcha_1"}
        assert all(len(texts) == 1 and texts[0].strip() for texts in errors.values())
        assert "nthu.edu.tw" in errors["id_email"][0]
        # The summary links to each field.
        links = page.eval_on_selector_all(".error-summary a", "as => as.map(a => a.hash)")
        assert set(links) == {"#id_email", "#id_begin", "#id_captcha_1"}


def test_the_captcha_is_shown_at_its_real_size_with_its_sound(live_server):
    with browser(locale="en-US") as page:
        page.goto(f"{live_server.url}/")
        size = page.evaluate(
            "(() => { const i = document.querySelector('.captcha-row img'); "
            "return [i.naturalWidth, i.naturalHeight, i.clientWidth, i.clientHeight]; })()"
        )
        assert size == [180, 56, 180, 56]  # not stretched, not blurred
        audio = page.get_attribute(".captcha-row a.audio", "href")
        key = page.input_value("#id_captcha_0")
        assert audio == f"/captcha/audio/{key}.wav"


def test_another_image_keeps_what_was_typed_with_and_without_script(live_server):
    base = live_server.url
    for script in (True, False):
        with browser(locale="en-US", java_script_enabled=script) as page:
            page.goto(f"{base}/")
            page.fill("#id_email", "mei@cs.nthu.edu.tw")
            page.fill("#id_begin", (timezone.localdate() - dt.timedelta(days=5)).isoformat())
            page.check("#id_language_1")
            key = page.input_value("#id_captcha_0")
            image = page.get_attribute(".captcha-row img", "src")
            page.evaluate("window.stayed = true")
            page.click("button.refresh")
            if script:
                # Polled from here: a JavaScript string evaluated in the page is what the
                # site's Content-Security-Policy refuses (no 'unsafe-eval').
                for _ in range(100):
                    if page.input_value("#id_captcha_0") != key:
                        break
                    page.wait_for_timeout(100)
                assert page.input_value("#id_captcha_0") != key
                assert page.evaluate("window.stayed === true")  # refreshed in place
                assert page.evaluate("document.activeElement.id") == "id_captcha_1"
                status = page.inner_text("[data-captcha-status]")
                assert status == "A new image is shown. Type its six digits."
            else:
                page.wait_for_load_state()
                assert page.evaluate("window.stayed") is None  # the form came back
            assert page.input_value("#id_captcha_0") != key
            assert page.get_attribute(".captcha-row img", "src") != image
            assert page.input_value("#id_email") == "mei@cs.nthu.edu.tw"
            assert (
                page.input_value("#id_begin")
                == (timezone.localdate() - dt.timedelta(days=5)).isoformat()
            )
            assert page.is_checked("#id_language_1")


def test_enter_in_a_field_submits_the_form_with_and_without_script(live_server):
    # "Show another image" is a submit button too, and comes before Submit: Enter must
    # still send the form, not ask for a new image.
    base = live_server.url
    for number, script in enumerate((True, False)):
        with browser(locale="en-US", java_script_enabled=script) as page:
            page.goto(f"{base}/")
            fill_form(page, address=f"enter{number}@cs.nthu.edu.tw")
            page.press("#id_email", "Enter")
            page.wait_for_url(f"{base}/answer/**")
            assert "Report requested" in page.inner_text("main")
    assert db(Query.objects.count) == 2


def test_reloading_the_answer_submits_nothing(live_server):
    base = live_server.url
    with browser(locale="en-US") as page:
        page.goto(f"{base}/")
        fill_form(page)
        page.click("button.primary")
        page.wait_for_url(f"{base}/answer/**")
        assert "Report requested" in page.inner_text("main")
        page.reload()
        page.go_back()
        page.go_forward()
        assert "Report requested" in page.inner_text("main")
    assert db(Query.objects.count) == 1


@pytest.mark.parametrize("language", ["en", "zh-hant"])
def test_every_page_names_whom_to_write_to(live_server, settings, language):
    db(pending_query)
    base = live_server.url
    with browser(locale=LOCALES[language]) as page:
        for path in (
            "/",
            "/help/",
            f"/answer/{TOKEN}/",
            "/answer/ffffffffffffffffffffffffffffffff/",
        ):
            page.goto(base + path)
            assert page.get_attribute("footer a", "href") == "mailto:opr@net.nthu.edu.tw"
        settings.SMTPLOG_CAMPUS_NETWORKS = [ipaddress.ip_network("192.0.2.0/24")]
        settings.SMTPLOG_VPN_URL = "https://vpn.example.edu/"
        page.goto(base + "/")
        assert page.get_attribute("footer a", "href") == "mailto:opr@net.nthu.edu.tw"
        assert page.get_attribute("main a[href^='https']", "href") == "https://vpn.example.edu/"


def test_on_a_phone_reset_is_smaller_and_apart_and_the_card_clears_the_header(live_server):
    with browser(locale="zh-TW", **PHONE) as page:
        page.goto(f"{live_server.url}/")
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        box = page.evaluate(
            "(() => { const b = s => document.querySelector(s).getBoundingClientRect(); "
            "const r = x => ({left: x.left, right: x.right, top: x.top, bottom: x.bottom, "
            "width: x.width, height: x.height}); return {header: r(b('header')), "
            "main: r(b('main')), submit: r(b('button.primary')), reset: r(b('button[type=reset]'))}; })()"
        )
        assert box["main"]["top"] - box["header"]["bottom"] >= 12
        submit, reset = box["submit"], box["reset"]
        assert reset["width"] * reset["height"] < 0.6 * submit["width"] * submit["height"]
        apart = max(reset["left"] - submit["right"], reset["top"] - submit["bottom"])
        assert apart >= 24

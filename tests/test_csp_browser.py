"""The strict Content-Security-Policy breaks nothing: chromium, through gunicorn with the
production settings, loads the form, the help page, the admin and the staff dashboard
without a single policy violation."""

from __future__ import annotations

import datetime as dt

import pytest
from django.contrib.auth.hashers import PBKDF2PasswordHasher
from django.contrib.auth.models import User
from django.utils import timezone

from smtplog.models import Status
from smtplog.store import add_events
from tests.conftest import make_event
from tests.queries.processes import gunicorn
from tests.queries.test_e2e import browser
from tests.services import require_postgres
from tests.worker import database_url

pytestmark = [pytest.mark.postgres, pytest.mark.browser, pytest.mark.slow]

PASSWORD = "a-long-staff-password-9"


@pytest.fixture
def site(transactional_db, tmp_path):
    require_postgres()
    # Hashed as production hashes (the test settings' fast hasher is not in its list).
    password = PBKDF2PasswordHasher().encode(PASSWORD, PBKDF2PasswordHasher().salt())
    User.objects.create(username="opr", password=password, is_staff=True, is_superuser=True)
    yesterday = timezone.now() - dt.timedelta(days=1)
    add_events([make_event("alice@cs.nthu.edu.tw", Status.SENT, yesterday)])  # a chart to draw
    env = {
        "DJANGO_SETTINGS_MODULE": "smtplog.settings",
        "DATABASE_URL": database_url(),
        "CELERY_BROKER_URL": "",
        "PYTHONUNBUFFERED": "1",
    }
    with gunicorn(env, tmp_path) as base_url:
        yield base_url


def test_no_page_violates_the_policy(site):
    violations: list[str] = []
    with browser() as page:
        page.on(
            "console",
            lambda m: violations.append(m.text) if "Content Security Policy" in m.text else None,
        )
        for path in ("/", "/help/"):
            page.goto(site + path)
            assert page.locator("img.captcha").count() == (1 if path == "/" else 0)
        page.goto(site + "/admin/login/")
        page.fill("#id_username", "opr")
        page.fill("#id_password", PASSWORD)
        page.click("input[type=submit]")
        page.wait_for_load_state()
        for path in ("/admin/", "/admin/queries/query/", "/admin/trace/", "/admin/dashboard/"):
            response = page.goto(site + path)
            assert response.status == 200, path
        # The dashboard's styles came from its stylesheet (computed: not the defaults).
        swatch = page.locator(".legend .swatch").first
        assert swatch.count() == 1, page.content()[:3000]
        assert swatch.evaluate("e => getComputedStyle(e).display") == "inline-block"
    assert violations == []

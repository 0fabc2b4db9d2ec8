"""What the probe of a production-like stack found, each pinned: headers, captcha, admin,
error pages."""

from __future__ import annotations

import logging
from unittest import mock

import pytest
from captcha.models import CaptchaStore
from django.contrib.auth.models import User
from django.db import OperationalError
from django.test import Client
from django.utils import translation

from queries.models import ClientHits, Query
from queries.views import CAPTCHA_LIMIT
from tests.conftest import CAMPUS_IP

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def default_language():
    with translation.override("en"):
        yield


class TestHeaders:
    def test_pages_forbid_inline_script_and_style(self, campus_client):
        policy = campus_client.get("/")["Content-Security-Policy"]
        directives = dict(d.strip().split(" ", 1) for d in policy.split(";"))
        assert directives["default-src"] == "'none'"
        for name in ("script-src", "style-src", "img-src", "connect-src", "form-action"):
            assert directives[name] == "'self'", name
        assert directives["frame-ancestors"] == "'none'"
        assert "unsafe-inline" not in policy and "unsafe-eval" not in policy

    def test_pages_turn_off_device_features(self, campus_client):
        policy = campus_client.get("/help/")["Permissions-Policy"]
        for feature in ("camera=()", "microphone=()", "geolocation=()", "payment=()"):
            assert feature in policy

    def test_the_form_and_its_answers_are_never_stored_by_a_cache(
        self, campus_client, django_capture_on_commit_callbacks
    ):
        form = campus_client.get("/")
        data = {
            "language": "en",
            "email": "alice@cs.nthu.edu.tw",
            "begin": form.context["form"]["begin"].value(),
            "end": form.context["form"]["end"].value(),
            "captcha_0": "testkey",
            "captcha_1": "PASSED",
        }
        with django_capture_on_commit_callbacks(execute=True):
            answer = campus_client.post("/", data, follow=True)  # to the answer page
        assert "alice@cs.nthu.edu.tw" in answer.content.decode()
        for response in (form, answer):
            assert "no-store" in response["Cache-Control"]
            assert "private" in response["Cache-Control"]

    def test_the_site_css_carries_no_inline_style_in_the_pages(self, campus_client):
        html = campus_client.get("/").content.decode()
        assert "<style" not in html and " style=" not in html and "<script>" not in html


class TestCaptcha:
    def test_off_campus_gets_no_image_and_no_new_challenge(self, outside_client):
        key = CaptchaStore.generate_key()
        assert outside_client.get(f"/captcha/image/{key}/").status_code == 403
        assert (
            outside_client.get(
                "/captcha/refresh/", HTTP_X_REQUESTED_WITH="XMLHttpRequest"
            ).status_code
            == 403
        )
        assert CaptchaStore.objects.count() == 1

    def test_a_campus_client_gets_images_and_refreshes(self, campus_client):
        key = CaptchaStore.generate_key()
        image = campus_client.get(f"/captcha/image/{key}/")
        assert image.status_code == 200 and image["Content-Type"] == "image/png"
        refresh = campus_client.get("/captcha/refresh/", HTTP_X_REQUESTED_WITH="XMLHttpRequest")
        assert refresh.status_code == 200 and refresh.json()["key"] != key

    def test_refreshes_are_bounded_per_client_network(self, campus_client):
        ajax = {"HTTP_X_REQUESTED_WITH": "XMLHttpRequest"}
        codes = [campus_client.get("/captcha/refresh/", **ajax).status_code for _ in range(40)]
        assert codes == [200] * CAPTCHA_LIMIT + [429] * (40 - CAPTCHA_LIMIT)
        assert CaptchaStore.objects.count() == CAPTCHA_LIMIT
        # Another client network has its own allowance.
        other = Client(REMOTE_ADDR="140.114.9.9")
        assert other.get("/captcha/refresh/", **ajax).status_code == 200
        assert set(ClientHits.objects.values_list("key", flat=True)) == {
            f"captcha:{CAMPUS_IP}",
            "captcha:140.114.9.9",
        }


class TestAdmin:
    @pytest.fixture
    def staff(self):
        return User.objects.create_user("opr", password="right-horse-battery", is_staff=True)

    def login(self, client: Client, password: str):
        return client.post("/admin/login/?next=/admin/", {"username": "opr", "password": password})

    def test_off_campus_gets_no_admin_at_all(self, staff, outside_client):
        for path in ("/admin/", "/admin/login/"):
            response = outside_client.get(path)
            assert response.status_code == 403
            assert "staff's networks only" in response.content.decode()
        assert self.login(outside_client, "right-horse-battery").status_code == 403

    def test_staff_networks_are_their_own_setting(self, staff, settings):
        import ipaddress

        settings.SMTPLOG_STAFF_NETWORKS = [ipaddress.ip_network("140.114.63.0/24")]
        assert Client(REMOTE_ADDR="140.114.63.9").get("/admin/login/").status_code == 200
        assert Client(REMOTE_ADDR="140.114.1.9").get("/admin/login/").status_code == 403
        assert Client(REMOTE_ADDR="140.114.1.9").get("/").status_code == 200  # still campus

    def test_failed_logins_are_logged_and_lock_the_address_out(self, staff, campus_client, caplog):
        with caplog.at_level(logging.WARNING):
            for _ in range(5):
                assert self.login(campus_client, "wrong").status_code in (200, 429)
        assert (
            "AXES: Repeated login failure" in caplog.text or "login failed" in caplog.text.lower()
        )
        assert CAMPUS_IP in caplog.text
        # The right password no longer helps from that address, for now.
        locked = self.login(campus_client, "right-horse-battery")
        assert locked.status_code == 429
        assert "Too many failed sign-ins" in locked.content.decode()
        # Another staff address is not locked out.
        other = Client(REMOTE_ADDR="140.114.7.7")
        assert self.login(other, "right-horse-battery").status_code == 302


class TestErrorPages:
    def test_a_bug_gives_a_localized_500_naming_whom_to_write_to(self, settings):
        client = Client(REMOTE_ADDR=CAMPUS_IP, raise_request_exception=False)
        with mock.patch("queries.views.QueryForm", side_effect=RuntimeError("bug")):
            response = client.get("/", HTTP_ACCEPT_LANGUAGE="zh-TW")
        assert response.status_code == 500
        page = response.content.decode()
        assert "發生錯誤" in page and settings.SMTPLOG_CONTACT_EMAIL in page
        assert "Server Error (500)" not in page

    def test_a_database_outage_gives_a_503_saying_to_come_back(self, settings):
        client = Client(REMOTE_ADDR=CAMPUS_IP, raise_request_exception=False)
        down = OperationalError("connection to server failed: Connection refused")
        with mock.patch("queries.views.QueryForm", side_effect=down):
            response = client.get("/", HTTP_ACCEPT_LANGUAGE="en")
        assert response.status_code == 503
        page = response.content.decode()
        assert "Temporarily unavailable" in page and "not recorded" in page
        assert settings.SMTPLOG_CONTACT_EMAIL in page
        assert not Query.objects.exists()

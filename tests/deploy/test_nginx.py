"""The shipped deployment works: nginx (deploy/nginx/smtplog.conf) with TLS in front of
gunicorn (deploy/gunicorn.conf.py) on its unix socket, the production settings, PostgreSQL
and Redis. Campus is 127.0.0.2, off campus 127.0.0.3; every request is a new TLS
connection from one of them."""

from __future__ import annotations

import json
import os
import re
import signal
import urllib.parse

import pytest
from captcha.models import CaptchaStore

from queries.models import Query
from tests.deploy.stack import CAMPUS, HOST, OFF_CAMPUS, collectstatic, running_stack, site_env
from tests.queries.processes import redis_server
from tests.services import require_postgres, require_program
from tests.worker import database_url, other_sessions, wait_until

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.slow]

# Every way a client might claim to be on campus from off campus.
FORGED = [
    [("X-Forwarded-For", CAMPUS)],
    [("X-Forwarded-For", f"{CAMPUS}, {CAMPUS}")],
    [("X-Forwarded-For", f"{CAMPUS},{CAMPUS}")],
    [("X-Forwarded-For", f"{OFF_CAMPUS}, {CAMPUS}")],
    [("X-Forwarded-For", f'"{CAMPUS}"')],
    [("X-Forwarded-For", f"{CAMPUS}:443")],
    [("X-Forwarded-For", f"::ffff:{CAMPUS}")],
    [("X-Forwarded-For", f"unknown, {CAMPUS}")],
    [("X-Forwarded-For", CAMPUS), ("X-Forwarded-For", CAMPUS)],
    [("x-forwarded-for", CAMPUS)],
    [("X_Forwarded_For", CAMPUS)],
    [("Forwarded", f"for={CAMPUS}")],
    [("Forwarded", f'for="{CAMPUS}";proto=https;by=nginx')],
    [("X-Real-IP", CAMPUS)],
    [("Client-IP", CAMPUS)],
    [("True-Client-IP", CAMPUS)],
    [("X-Cluster-Client-IP", CAMPUS)],
    [("CF-Connecting-IP", CAMPUS)],
    [("Fastly-Client-IP", CAMPUS)],
    [("X-Client-IP", CAMPUS)],
    [("X-Original-Forwarded-For", CAMPUS)],
    [("X-Forwarded", f"for={CAMPUS}")],
    [("Forwarded-For", CAMPUS)],
    [("X-Forwarded-Proto", "https"), ("X-Forwarded-For", CAMPUS)],
    [("X-Forwarded-Host", HOST), ("X-Forwarded-For", CAMPUS), ("X-Real-IP", CAMPUS)],
]


@pytest.fixture(scope="module")
def static_root(tmp_path_factory):
    """collectstatic of the production settings (hashed names and .gz copies)."""
    root = tmp_path_factory.mktemp("static") / "static"
    collectstatic(site_env("sqlite:///unused", "", root))
    return root


@pytest.fixture
def stack(transactional_db, static_root, tmp_path):
    require_postgres()  # gunicorn opens the test database itself
    with (
        redis_server(require_program("redis-server"), tmp_path) as redis,
        running_stack(
            tmp_path, site_env(database_url(), redis.url, static_root), static_root
        ) as stack,
    ):
        yield stack
    wait_until(lambda: not other_sessions(), timeout=15, what="gunicorn's sessions to close")


def hidden(html: str, name: str) -> str:
    return re.search(rf'name="{name}" value="([^"]*)"', html)[1]


def form_post(stack, source: str, headers=(), answer: str | None = None):
    """GET the page (its CSRF cookie and tokens), then POST the form as a browser would."""
    page = stack.request("GET", "/", source=source, headers=headers)
    token = page.cookies()["csrftoken"]
    fields = {"csrfmiddlewaretoken": hidden(page.body, "csrfmiddlewaretoken")}
    if "captcha_0" in page.body:
        key = hidden(page.body, "captcha_0")
        fields.update(
            token=hidden(page.body, "token"),
            begin=hidden(page.body, "begin"),
            end=hidden(page.body, "end"),
            captcha_0=key,
            captcha_1=answer or CaptchaStore.objects.get(hashkey=key).response,
        )
    fields.update(email="mei@cs.nthu.edu.tw", language="en")
    body = urllib.parse.urlencode(fields).encode()
    return stack.request(
        "POST",
        "/",
        source=source,
        headers=[
            *headers,
            ("Cookie", f"csrftoken={token}"),
            ("Origin", f"https://{HOST}"),
            ("Content-Type", "application/x-www-form-urlencoded"),
        ],
        body=body,
    )


def test_a_campus_client_gets_the_form_and_its_answer(stack):
    page = stack.request("GET", "/", source=CAMPUS)
    assert page.status == 200 and "captcha_0" in page.body
    assert "default-src 'none'" in page.headers["Content-Security-Policy"]
    assert "no-store" in page.headers["Cache-Control"]
    assert page.headers["Strict-Transport-Security"].startswith("max-age=31536000")
    answer = form_post(stack, CAMPUS)
    if answer.status == 303:  # the answer page after a redirect (Post/Redirect/Get)
        answer = stack.request("GET", answer.headers["Location"], source=CAMPUS)
    assert answer.status == 200, answer.body[:2000]
    assert "mei@cs.nthu.edu.tw" in answer.body
    query = Query.objects.get()
    assert (query.client_ip, query.outcome) == (CAMPUS, "pending")  # queued on Redis


@pytest.mark.parametrize("scheme_tls", [False, True], ids=["http", "https"])
def test_plain_http_is_sent_to_https(stack, scheme_tls):
    response = stack.request("GET", "/help/?x=1", tls=scheme_tls)
    if scheme_tls:
        assert response.status == 200
    else:
        assert response.status == 301
        assert response.headers["Location"] == f"https://{HOST}/help/?x=1"


def test_no_forged_header_gets_off_campus_in(stack):
    for headers in FORGED:
        page = stack.request("GET", "/", source=OFF_CAMPUS, headers=headers)
        assert page.status == 403, headers
        assert "Campus network only" in page.body, headers
        answer = form_post(stack, OFF_CAMPUS, headers=headers, answer="abcdef")
        assert answer.status == 403, headers
        assert "Campus network only" in answer.body, headers  # the campus check, not CSRF
        captcha = stack.request("GET", "/captcha/refresh/", source=OFF_CAMPUS, headers=headers)
        assert captcha.status == 403, headers
    assert not Query.objects.exists()
    assert not CaptchaStore.objects.exists()
    # The address gunicorn was told is the one nginx saw, whatever the client sent.
    assert re.findall(r"Your IP address\S*: (\S+)\)", page.body) == [OFF_CAMPUS]


def test_the_admin_and_healthz_are_for_staff_networks_only(stack):
    for path in ("/admin/", "/admin/login/", "/healthz"):
        refused = stack.request(
            "GET", path, source=OFF_CAMPUS, headers=[("X-Forwarded-For", CAMPUS)]
        )
        assert refused.status == 403, path
    assert stack.request("GET", "/admin/login/", source=CAMPUS).status == 200
    health = stack.request("GET", "/healthz", source=CAMPUS)
    body = json.loads(health.body)
    assert body["checks"]["database"] == {"ok": True} and body["checks"]["broker"] == {"ok": True}
    assert health.status == (200 if body["status"] == "ok" else 503)


def test_static_files_with_hashed_names_are_cached_for_a_year(stack, static_root):
    manifest = json.loads((static_root / "staticfiles.json").read_text())["paths"]
    hashed = manifest["css/site.css"]
    assert re.fullmatch(r"css/site\.[0-9a-f]{12}\.css", hashed)
    page = stack.request("GET", "/", source=CAMPUS)
    assert f"/static/{hashed}" in page.body  # the pages link the hashed name
    css = stack.request("GET", f"/static/{hashed}", source=OFF_CAMPUS)
    assert css.status == 200 and css.headers["Content-Type"] == "text/css"
    assert css.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    plain = stack.request("GET", "/static/css/site.css", source=CAMPUS)
    assert plain.status == 200 and plain.headers["Cache-Control"] == "public, max-age=3600"
    gz = stack.request("GET", f"/static/{hashed}", headers=[("Accept-Encoding", "gzip")])
    assert gz.headers["Content-Encoding"] == "gzip"


def test_a_request_body_over_the_limit_is_refused(stack):
    big = b"email=" + b"a" * 100_000
    response = stack.request(
        "POST",
        "/",
        source=CAMPUS,
        headers=[("Content-Type", "application/x-www-form-urlencoded")],
        body=big,
    )
    assert response.status == 413


def test_with_gunicorn_down_nginx_shows_the_bilingual_page(stack):
    os.killpg(stack.gunicorn.pid, signal.SIGKILL)  # the master and its workers
    stack.gunicorn.wait()
    response = stack.request("GET", "/", source=CAMPUS)
    assert response.status == 502
    assert "暫時無法使用" in response.body and "Temporarily unavailable" in response.body

"""/healthz and `manage.py healthcheck`: one check, JSON, 200 or 503 naming what fails."""

from __future__ import annotations

import datetime as dt
import json
from unittest import mock

import pytest
import time_machine
from django.core.management import CommandError, call_command
from django.db import OperationalError
from django.test import Client

from smtplog import health
from smtplog.models import Heartbeat, LogFile
from tests.conftest import NOW, OUTSIDE_IP
from tests.services import require_redis

pytestmark = pytest.mark.django_db


@pytest.fixture
def frozen():
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


@pytest.fixture
def healthy(frozen):
    """Beat, ingestion and the nightly alerts ran on time; one live log, a rotated one."""
    for name, ago in (("beat", 30), ("ingest", 50), ("alerts", 9 * 3600)):
        Heartbeat.objects.create(name=name, at=NOW - dt.timedelta(seconds=ago))
    LogFile.objects.create(
        fingerprint="a" * 64,
        path="/var/log/relays/smtp1/mail.log",
        last_line_time=NOW - dt.timedelta(seconds=20),
    )
    LogFile.objects.create(
        fingerprint="b" * 64,
        path="/var/log/relays/smtp1/mail.log.1",
        last_line_time=NOW - dt.timedelta(days=1),
    )


def healthz(client: Client | None = None):
    response = (client or Client(REMOTE_ADDR=OUTSIDE_IP)).get("/healthz")
    return response, json.loads(response.content)


def test_healthy_is_200_with_every_part_ok(healthy):
    response, body = healthz()
    assert response.status_code == 200 and response["Content-Type"] == "application/json"
    assert body["status"] == "ok" and body["failing"] == []
    assert set(body["checks"]) == {"database", "broker", "beat", "ingestion", "alerts", "logs"}
    assert body["checks"]["logs"]["files"] == [
        {"path": "/var/log/relays/smtp1/mail.log", "lag_seconds": 20}
    ]
    assert body["checks"]["beat"]["age_seconds"] == 30


def test_it_opens_no_session_and_is_never_cached(healthy):
    response, _ = healthz()
    assert not response.cookies
    assert "no-store" in response["Cache-Control"]


def test_it_names_no_address(healthy, mail_events):
    response, _ = healthz()
    assert "@" not in response.content.decode()


def test_a_broker_that_does_not_answer_is_a_503_naming_it(healthy, settings):
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:1/0"  # nothing listens there
    response, body = healthz()
    assert response.status_code == 503
    assert body["failing"] == ["broker"] and body["checks"]["broker"]["error"] == "ConnectionError"


@pytest.mark.redis
def test_a_real_broker_answers(healthy, settings):
    settings.CELERY_BROKER_URL = require_redis()
    assert healthz()[1]["checks"]["broker"] == {"ok": True}


def test_beat_silent_for_ten_minutes_is_named(healthy, frozen):
    Heartbeat.objects.filter(name="beat").update(at=NOW - dt.timedelta(minutes=10))
    response, body = healthz()
    assert response.status_code == 503 and body["failing"] == ["beat"]
    assert body["checks"]["beat"]["error"] == "last ran 600 s ago (expected within 300 s)"


def test_a_nightly_alert_run_that_never_happened_is_named(healthy):
    Heartbeat.objects.filter(name="alerts").delete()
    _, body = healthz()
    assert body["failing"] == ["alerts"] and body["checks"]["alerts"]["error"] == "never ran"


def test_a_log_falling_behind_is_named_with_its_path(healthy, settings):
    settings.SMTPLOG_HEALTH_LOG_LAG = 600
    LogFile.objects.create(
        fingerprint="c" * 64,
        path="/var/log/relays/smtp2/mail.log",
        last_line_time=NOW - dt.timedelta(hours=1),
    )
    response, body = healthz()
    assert response.status_code == 503 and body["failing"] == ["logs"]
    assert body["checks"]["logs"]["error"] == (
        "newest line older than 600 s in: /var/log/relays/smtp2/mail.log"
    )


def test_ingestion_counts_a_follower_writing_batches(healthy):
    # ingest_maillog --follow on the log host records no heartbeat; its batches show.
    Heartbeat.objects.filter(name="ingest").delete()
    assert healthz()[1]["checks"]["ingestion"]["ok"] is True


def test_the_database_down_is_a_503_naming_it(healthy):
    with mock.patch.object(
        health, "database", return_value={"ok": False, "error": "OperationalError"}
    ):
        response, body = healthz()
    assert response.status_code == 503
    assert body["failing"][0] == "database"
    assert body["checks"]["beat"]["error"] == "not checked: the database is down"


def test_the_database_check_reports_what_the_driver_raised():
    with mock.patch("smtplog.health.connection.cursor", side_effect=OperationalError("down")):
        assert health.database() == {"ok": False, "error": "OperationalError"}


def test_the_command_prints_the_same_and_exits_1_when_failing(healthy, capsys, settings):
    call_command("healthcheck")
    assert json.loads(capsys.readouterr().out.rsplit("}", 1)[0] + "}")["status"] == "ok"
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:1/0"
    with pytest.raises(CommandError, match="unhealthy: broker"):
        call_command("healthcheck")


def test_the_scheduled_jobs_record_their_heartbeats(frozen, settings):
    from alerts.tasks import send_daily_alerts
    from smtplog.tasks import heartbeat, ingest_configured_logs

    settings.SMTPLOG_MAILLOG_GLOBS = []
    heartbeat.delay()
    ingest_configured_logs.delay()
    send_daily_alerts.delay()
    assert dict(Heartbeat.objects.values_list("name", "at")) == {
        "beat": NOW,
        "ingest": NOW,
        "alerts": NOW,
    }

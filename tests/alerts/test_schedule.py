"""The beat schedule in settings: every entry runs a real task and expires."""

from __future__ import annotations

import datetime as dt

import pytest
from django.conf import settings

from smtplog.celery import app

SCHEDULE = settings.CELERY_BEAT_SCHEDULE


@pytest.fixture(scope="module")
def registered_tasks() -> set[str]:
    app.loader.import_default_modules()
    return set(app.tasks)


@pytest.mark.parametrize("name", SCHEDULE)
def test_every_beat_entry_names_a_registered_task(name, registered_tasks):
    assert SCHEDULE[name]["task"] in registered_tasks


@pytest.mark.parametrize("name", SCHEDULE)
def test_every_beat_entry_expires_before_its_next_run(name):
    # A run the workers could not start in time is dropped, not piled up behind the next.
    entry = SCHEDULE[name]
    if isinstance(entry["schedule"], dt.timedelta):
        period = entry["schedule"].total_seconds()
    else:  # the crontab entries run once a day
        assert len(entry["schedule"].hour) == len(entry["schedule"].minute) == 1
        period = 24 * 3600
    assert 0 < entry["options"]["expires"] < period


def test_the_schedule_holds_every_periodic_task_of_the_issue():
    tasks = {entry["task"] for entry in SCHEDULE.values()}

    assert {
        "smtplog.tasks.ingest_configured_logs",
        "alerts.tasks.send_daily_alerts",
        "smtplog.tasks.purge_expired_data",
        "queries.tasks.sweep_pending_queries",
        "queries.tasks.cleanup_captchas",
    } <= tasks


def test_the_alerts_run_nightly_at_the_configured_local_time():
    schedule = SCHEDULE["send-daily-alerts"]["schedule"]
    hour, minute = settings.SMTPLOG_ALERT_TIME

    assert (schedule.hour, schedule.minute) == ({hour}, {minute})
    assert settings.CELERY_TIMEZONE == settings.TIME_ZONE

"""Celery tasks of the alerts app: each takes values and calls one plain function."""

from __future__ import annotations

from celery import shared_task

from alerts import alerting
from smtplog import delivery
from smtplog.models import Heartbeat


@shared_task
def send_daily_alerts() -> str:
    """The nightly pass: yesterday and any missed days, one send_alert task per alert."""
    alert_ids = alerting.prepare_alerts(alerting.catch_up_days())
    for alert_id in alert_ids:
        send_alert.delay_on_commit(alert_id)
    Heartbeat.record("alerts")
    return f"{len(alert_ids)} alerts to send"


# The reports' retry policy (smtplog.delivery); an alert still unsent after the retries
# is pending, and the next nightly pass queues it again.
@shared_task(**delivery.TASK_OPTIONS)
def send_alert(self, alert_id: int) -> str:
    return delivery.run_task(self, alerting.deliver, alert_id)

"""Celery tasks of the alerts app: each takes values and calls one plain function."""

from __future__ import annotations

import smtplib

from celery import shared_task

from alerts import alerting


@shared_task
def send_daily_alerts() -> str:
    """The nightly pass: yesterday and any missed days, one send_alert task per alert."""
    alert_ids = alerting.prepare_alerts(alerting.catch_up_days())
    for alert_id in alert_ids:
        send_alert.delay_on_commit(alert_id)
    return f"{len(alert_ids)} alerts to send"


# Transient mail server trouble is retried with backoff for about two days; an alert
# still unsent after that is pending, and the next nightly pass queues it again.
@shared_task(
    autoretry_for=(smtplib.SMTPException, OSError),
    retry_backoff=60,
    retry_backoff_max=3600,
    retry_jitter=True,
    max_retries=50,
)
def send_alert(alert_id: int) -> str:
    return alerting.deliver(alert_id)

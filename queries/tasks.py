"""Celery tasks of the query form. Each takes a primary key or nothing and calls one function."""

from __future__ import annotations

import datetime as dt

from captcha.models import CaptchaStore
from celery import shared_task
from django.utils import timezone

from queries import sending
from smtplog import delivery


@shared_task(**delivery.TASK_OPTIONS)
def send_report(self, query_id: int) -> str:
    """Send one query's report; transient SMTP failures are retried (smtplog.delivery)."""
    return delivery.run_task(self, sending.send_query_report, query_id)


@shared_task
def sweep_pending_queries(pickup_seconds: int | None = None) -> str:
    """Re-enqueue queries whose task was lost (broker down at submit, a worker killed)."""
    if pickup_seconds is None:
        return sending.sweep(send_report.delay)
    return sending.sweep(send_report.delay, pickup=dt.timedelta(seconds=pickup_seconds))


@shared_task
def cleanup_captchas() -> str:
    """Challenges nobody answered (a form left open); answered ones are deleted at once."""
    removed, _ = CaptchaStore.objects.filter(expiration__lte=timezone.now()).delete()
    return f"{removed} expired captchas removed"

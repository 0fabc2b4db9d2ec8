"""Celery tasks of the query form. Each takes a primary key or nothing and calls one function."""

from __future__ import annotations

import datetime as dt

from captcha.models import CaptchaStore
from celery import shared_task
from django.conf import settings
from django.utils import timezone

from queries import sending


@shared_task(
    bind=True,
    autoretry_for=(sending.TransientSendError,),
    retry_backoff=settings.SMTPLOG_REPORT_RETRY_BACKOFF,
    retry_backoff_max=15 * 60,  # below the sweeper's STALE_AFTER: a retrying query is not lost
    retry_jitter=True,
    max_retries=8,
)
def send_report(self, query_id: int) -> str:
    """Send one query's report; transient SMTP failures are retried with backoff."""
    return sending.send_query_report(query_id, final=self.request.retries >= self.max_retries)


@shared_task
def sweep_pending_queries(min_age_seconds: int | None = None) -> str:
    """Re-enqueue queries left pending by a broker outage at submit time (or a lost task)."""
    if min_age_seconds is None:
        return sending.sweep(send_report.delay)
    return sending.sweep(send_report.delay, min_age=dt.timedelta(seconds=min_age_seconds))


@shared_task
def cleanup_captchas() -> str:
    """Challenges nobody answered (a form left open); answered ones are deleted at once."""
    removed, _ = CaptchaStore.objects.filter(expiration__lte=timezone.now()).delete()
    return f"{removed} expired captchas removed"

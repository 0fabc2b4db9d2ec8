"""Celery tasks of the query form. Each takes a primary key or nothing and calls one function."""

from __future__ import annotations

import datetime as dt
import functools

from captcha.models import CaptchaStore
from celery import shared_task
from django.utils import timezone

from queries import sending, throttle
from smtplog import delivery

# Each broker round trip of a publish from the web process, and no retry: a frozen
# broker (Redis stopped, not gone) costs a submit about a second, not a worker's minute.
PUBLISH_TIMEOUT = 0.5


@shared_task(**delivery.TASK_OPTIONS)
def send_report(self, query_id: int) -> str:
    """Send one query's report; transient SMTP failures are retried (smtplog.delivery)."""
    return delivery.run_task(self, sending.send_query_report, query_id)


def enqueue_report(query_id: int) -> None:
    """Queue send_report from the web; raises within about a second if the broker hangs.

    Publishes through a pool of broker connections of its own with short socket
    timeouts (the workers keep the lenient ones of the settings); the sweeper sends
    what could not be queued.
    """
    if send_report.app.conf.task_always_eager:
        send_report.delay(query_id)
        return
    with _publish_pool().acquire(block=True, timeout=PUBLISH_TIMEOUT) as connection:
        send_report.apply_async((query_id,), connection=connection, retry=False)


@functools.cache
def _publish_pool():
    options = {"socket_timeout": PUBLISH_TIMEOUT, "socket_connect_timeout": PUBLISH_TIMEOUT}
    return send_report.app.connection_for_write(transport_options=options).Pool(limit=4)


@shared_task
def sweep_pending_queries(pickup_seconds: int | None = None) -> str:
    """Re-enqueue queries whose task was lost (broker down at submit, a worker killed)."""
    if pickup_seconds is None:
        return sending.sweep(send_report.delay)
    return sending.sweep(send_report.delay, pickup=dt.timedelta(seconds=pickup_seconds))


@shared_task
def cleanup_captchas() -> str:
    """Challenges nobody answered (a form left open); answered ones are deleted at once."""
    now = timezone.now()
    removed, _ = CaptchaStore.objects.filter(expiration__lte=now).delete()
    throttle.forget_before(now - dt.timedelta(hours=1))
    return f"{removed} expired captchas removed"

"""Celery tasks of the mail-event domain. Each loads by value and calls one function."""

from __future__ import annotations

import datetime as dt
import logging

from celery import shared_task

from smtplog import retention, store
from smtplog.models import Heartbeat

log = logging.getLogger(__name__)


@shared_task
def recount_counters(day: str) -> str:
    """Rebuild one day's daily counters from its events (a repair tool for staff)."""
    fixed = store.rebuild_counters(dt.date.fromisoformat(day))  # in one transaction
    return f"{day}: {fixed} counters rebuilt"


@shared_task(soft_time_limit=50, time_limit=58)
def ingest_configured_logs() -> str:
    """Every minute: read what is new in SMTPLOG_MAILLOG_GLOBS. Skips if an ingester runs.

    What went wrong is logged, one line each (the files' rows on the dashboard say it too).
    """
    from django.conf import settings

    from smtplog.ingest.run import IngestBusy, IngestFailed, ingest

    try:
        summary = ingest(settings.SMTPLOG_MAILLOG_GLOBS, wait=False)
    except IngestBusy:
        return "busy: another ingester is running"
    except IngestFailed as exc:
        log.error("ingestion stopped: %s", exc)
        return f"stopped: {exc}"
    for note in summary.notes:
        log.warning("%s", note)
    for error in summary.errors:
        log.error("%s", error)
    Heartbeat.record("ingest")
    return f"{summary.lines} lines, {summary.events} events, {len(summary.errors)} errors"


@shared_task
def purge_expired_data() -> str:
    """Nightly: delete every kind of row older than the retention window, in batches."""
    deleted = retention.purge()
    return ", ".join(f"{kind}: {n}" for kind, n in deleted.items())


@shared_task
def heartbeat() -> str:
    """Every minute: celery beat and a worker are alive (read by the health check)."""
    Heartbeat.record("beat")
    return "alive"

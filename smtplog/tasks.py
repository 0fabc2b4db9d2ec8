"""Celery tasks of the mail-event domain. Each loads by value and calls one function."""

from __future__ import annotations

import datetime as dt

from celery import shared_task
from django.db import transaction

from smtplog import store


@shared_task
def recount_counters(day: str) -> str:
    """Rebuild one day's daily counters from its events (a repair tool for staff)."""
    the_day = dt.date.fromisoformat(day)
    with transaction.atomic():
        fixed = store.rebuild_counters(the_day)
    return f"{day}: {fixed} counters rebuilt"

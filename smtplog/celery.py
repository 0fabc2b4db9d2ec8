"""Celery application. Broker: CELERY_BROKER_URL (Redis); none configured = eager, in-process."""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "smtplog.settings")

app = Celery("smtplog")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

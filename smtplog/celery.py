"""Celery application. Broker: CELERY_BROKER_URL (Redis); none configured = eager, in-process."""

from __future__ import annotations

import os
from contextlib import contextmanager

from celery import Celery
from kombu.transport import redis as kombu_redis

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "smtplog.settings")

app = Celery("smtplog")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


class RedisChannel(kombu_redis.Channel):
    """kombu's Redis channel, sending every command through one client of its pool.

    kombu builds a new redis.Redis client around the channel's connection pool for each
    message it publishes; building one (its table of reply parsers) was a fifth of the
    cost of sending a report's task from the web process. A client holds no connection of
    its own and is safe to share between threads: the pool lends one to each command.
    """

    _shared_client = None

    @contextmanager
    def conn_or_acquire(self, client=None):
        if client is None:
            if self._shared_client is None:
                self._shared_client = self._create_client()
            client = self._shared_client
        yield client


class RedisTransport(kombu_redis.Transport):
    """The redis:// transport with RedisChannel (settings.CELERY_BROKER_TRANSPORT)."""

    Channel = RedisChannel

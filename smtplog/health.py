"""Is the service healthy? One check for /healthz and `manage.py healthcheck`.

Each part answers ok or names what is wrong; nothing here reads personal data, opens a
session or scans a big table: a monitoring system may call it every few seconds.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field

from django.conf import settings
from django.db import DatabaseError, connection
from django.db.models import Max
from django.utils import timezone

from smtplog.models import Heartbeat, LogFile

BEAT_EVERY = dt.timedelta(minutes=5)  # the heartbeat task runs every minute
INGEST_EVERY = dt.timedelta(minutes=10)  # the ingestion task runs every minute
ALERTS_EVERY = dt.timedelta(hours=26)  # nightly, with two hours' grace
ACTIVE_LOG = dt.timedelta(days=2)  # a file written to since then is a live log
_ROTATED = re.compile(r"(\.\d+|\.gz|-\d{8})+$")  # mail.log.1, mail.log.2.gz, mail.log-20261120


@dataclass
class Report:
    checks: dict[str, dict] = field(default_factory=dict)

    @property
    def failing(self) -> list[str]:
        return [name for name, result in self.checks.items() if not result["ok"]]

    @property
    def healthy(self) -> bool:
        return not self.failing

    def as_dict(self) -> dict:
        return {
            "status": "ok" if self.healthy else "failing",
            "failing": self.failing,
            "checks": self.checks,
        }


def check(now: dt.datetime | None = None) -> Report:
    now = now or timezone.now()
    report = Report()
    report.checks["database"] = database()
    report.checks["broker"] = broker()
    if not report.checks["database"]["ok"]:
        for name in ("beat", "ingestion", "alerts", "logs"):
            report.checks[name] = {"ok": False, "error": "not checked: the database is down"}
        return report
    beats = dict(Heartbeat.objects.values_list("name", "at"))
    report.checks["beat"] = recent(beats.get("beat"), BEAT_EVERY, now)
    last_batch = LogFile.objects.aggregate(at=Max("updated"))["at"]
    last_ingest = max(filter(None, [beats.get("ingest"), last_batch]), default=None)
    report.checks["ingestion"] = recent(last_ingest, INGEST_EVERY, now)
    report.checks["alerts"] = recent(beats.get("alerts"), ALERTS_EVERY, now)
    report.checks["logs"] = log_lag(now)
    return report


def database() -> dict:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except DatabaseError as exc:
        return {"ok": False, "error": type(exc).__name__}
    return {"ok": True}


def broker() -> dict:
    """A PING with a one-second budget; without a broker, tasks run in-process."""
    url = settings.CELERY_BROKER_URL
    if not url:
        return {"ok": True, "note": "no broker: tasks run in-process"}
    import redis

    try:
        client = redis.Redis.from_url(url, socket_timeout=1, socket_connect_timeout=1)
        with client:
            client.ping()
    except (redis.RedisError, OSError) as exc:
        return {"ok": False, "error": type(exc).__name__}
    return {"ok": True}


def recent(at: dt.datetime | None, within: dt.timedelta, now: dt.datetime) -> dict:
    if at is None:
        return {"ok": False, "error": "never ran"}
    age = (now - at).total_seconds()
    result = {"ok": age <= within.total_seconds(), "last": at.isoformat(), "age_seconds": int(age)}
    if not result["ok"]:
        result["error"] = (
            f"last ran {int(age)} s ago (expected within {int(within.total_seconds())} s)"
        )
    return result


def log_lag(now: dt.datetime) -> dict:
    """Each live log file's newest line against now (rotated copies are finished files)."""
    rows = (
        LogFile.objects.filter(updated__gte=now - ACTIVE_LOG)
        .order_by("path", "-updated")
        .values_list("path", "last_line_time")
    )
    files, seen = [], set()
    for path, last_line in rows:
        if path in seen or _ROTATED.search(path):
            continue
        seen.add(path)
        lag = None if last_line is None else int((now - last_line).total_seconds())
        files.append({"path": path, "lag_seconds": lag})
    limit = settings.SMTPLOG_HEALTH_LOG_LAG
    late = [f["path"] for f in files if f["lag_seconds"] is None or f["lag_seconds"] > limit]
    result = {"ok": not late, "files": files}
    if late:
        result["error"] = f"newest line older than {limit} s in: {', '.join(late)}"
    return result

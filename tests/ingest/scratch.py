"""Scratch databases for tests that run manage.py in subprocesses (kill -9, two ingesters).

PostgreSQL when the tests run on it (a fresh database per call), else an SQLite file.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

from django.conf import settings

REPO = Path(__file__).resolve().parents[2]

DUMP = """
import contextlib
import json
from smtplog.models import DailyCounter, Event, LogFile, LoginAlias, Message, RelayPart
msgs = {m.pk: [m.relay, m.queue_id, m.first_seen.isoformat()] for m in Message.objects.all()}
out = {
    "events": sorted([e.time.isoformat(), str(e.day), e.sender, e.status, msgs.get(e.message_id),
                      e.relay, e.queue_id, e.client_ip, e.sasl_username, e.recipient, e.next_hop,
                      e.dsn, e.delay, e.response] for e in Event.objects.all()),
    "counters": sorted([c.sender, str(c.day), c.auth_blk, c.auth_rcv, c.bounced, c.deferred,
                        c.expired, c.sent, c.total] for c in DailyCounter.objects.all()),
    "messages": sorted([m.relay, m.queue_id, m.first_seen.isoformat(), m.sender, m.client_ip,
                        m.sasl_username, m.removed_at and m.removed_at.isoformat(),
                        msgs.get(m.origin_id)] for m in Message.objects.all()),
    "aliases": sorted(LoginAlias.objects.values_list("login", "sender")),
    "positions": sorted(LogFile.objects.values_list("fingerprint", "position", "tail")),
    "parts": sorted(RelayPart.objects.values_list("logfile__fingerprint", "relay", "position")),
}
print(json.dumps(out))
"""


def scratch_database(tmp_path: Path) -> str:
    """A DATABASE_URL of a new, migrated, empty database."""
    db = settings.DATABASES["default"]
    if db["ENGINE"] == "django.db.backends.postgresql":
        import psycopg

        name = f"smtplog_scratch_{uuid.uuid4().hex[:10]}"
        dsn = dict(
            host=db["HOST"] or "127.0.0.1",
            port=db["PORT"] or 5432,
            user=db["USER"] or "postgres",
            password=db["PASSWORD"] or None,
        )
        with psycopg.connect(dbname="postgres", autocommit=True, **dsn) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        auth = dsn["user"] + (f":{dsn['password']}" if dsn["password"] else "")
        url = f"postgres://{auth}@{dsn['host']}:{dsn['port']}/{name}"
    else:
        url = f"sqlite:///{tmp_path / f'scratch-{uuid.uuid4().hex[:6]}.sqlite3'}"
    manage(url, tmp_path, "migrate", "-v0")
    return url


def drop_database(url: str) -> None:
    if url.startswith("postgres://"):
        import psycopg

        base, name = url.rsplit("/", 1)
        with psycopg.connect(base + "/postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def env(url: str, var_dir: Path) -> dict:
    e = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_URL", "CELERY_"))}
    e.update(
        DATABASE_URL=url,
        DJANGO_SETTINGS_MODULE="smtplog.settings",
        SMTPLOG_VAR_DIR=str(var_dir),
        PYTHONPATH=str(REPO),
    )
    return e


def manage(url: str, var_dir: Path, *args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(REPO / "manage.py"), *args],
        env=env(url, var_dir),
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
        **kwargs,
    )


def popen(url: str, var_dir: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(REPO / "manage.py"), *args],
        env=env(url, var_dir),
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def dump(url: str, var_dir: Path) -> dict:
    out = manage(url, var_dir, "shell", "-v0", "-c", DUMP).stdout
    return json.loads(out.strip().splitlines()[-1])


def open_parts(url: str) -> int:
    """The relays' parts of central logs open."""
    return _count(url, "SELECT COUNT(*) FROM smtplog_relaypart")


def lines_read(url: str) -> int:
    """Lines committed so far, read straight from the database (no Django start-up): the
    files', and the relays' parts of central logs read side by side."""
    return _count(
        url,
        "SELECT (SELECT COALESCE(SUM(lines), 0) FROM smtplog_logfile)"
        " + (SELECT COALESCE(SUM(lines), 0) FROM smtplog_relaypart)",
    )


def _count(url: str, sql: str) -> int:
    if url.startswith("postgres://"):
        import psycopg

        with psycopg.connect(url.replace("postgres://", "postgresql://", 1)) as conn:
            return int(conn.execute(sql).fetchone()[0])
    import sqlite3

    with contextlib.closing(sqlite3.connect(url.removeprefix("sqlite:///"), timeout=30)) as conn:
        return conn.execute(sql).fetchone()[0]

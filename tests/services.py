"""Finding the real services tests need, and skipping (or failing) without them.

On a laptop a test that needs PostgreSQL, Redis, chromium or pflogsumm skips when the
service is absent. With SMTPLOG_REQUIRE_SERVICES=1 (as .ci/run sets) a missing service
fails the test instead, so CI can never go green by skipping.
"""

from __future__ import annotations

import os
import shutil
import socket
from pathlib import Path

import pytest
from django.conf import settings

REQUIRE = os.environ.get("SMTPLOG_REQUIRE_SERVICES", "") == "1"
REDIS_URL = os.environ.get("SMTPLOG_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
CHROMIUM = os.environ.get("SMTPLOG_CHROMIUM", "/usr/bin/chromium")


def missing(what: str) -> None:
    """Skip, or fail when services are required."""
    if REQUIRE:
        pytest.fail(f"{what} is required here (SMTPLOG_REQUIRE_SERVICES=1) but not available")
    pytest.skip(f"{what} not available")


def uses_postgres() -> bool:
    return settings.DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql"


def require_postgres() -> None:
    if not uses_postgres():
        missing("PostgreSQL (set DATABASE_URL=postgres://...)")


def redis_answers(url: str = REDIS_URL) -> bool:
    import redis

    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=1).ping())
    except (redis.RedisError, OSError):
        return False


def require_redis(url: str = REDIS_URL) -> str:
    if not redis_answers(url):
        missing(f"Redis at {url}")
    return url


def require_chromium() -> str:
    if not Path(CHROMIUM).exists():
        missing(f"chromium at {CHROMIUM} (apt-get install chromium)")
    try:
        import playwright  # noqa: F401
    except ImportError:
        missing("the playwright package")
    return CHROMIUM


def require_program(name: str) -> str:
    path = shutil.which(name)
    if not path:
        missing(f"the program {name}")
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]

"""A real Celery worker process for end-to-end tests.

    from tests.services import require_postgres, require_redis
    from tests.worker import running_worker, wait_until

    @pytest.mark.postgres
    @pytest.mark.redis
    @pytest.mark.worker
    def test_it_does_the_thing_in_a_worker(transactional_db):
        require_postgres()
        broker_url = require_redis()
        with running_worker(broker_url) as worker:
            worker.send("smtplog.tasks.recount_counters", "2026-11-19")
            wait_until(lambda: ..., timeout=30, what="the counters", worker=worker)

The worker runs `celery -A smtplog worker` with the production settings module
(smtplog.settings) against the test database: the tests' own settings run tasks
eagerly, which is exactly what these tests must not do. Use `transactional_db`, so
what the test writes is committed and the worker sees it; the worker's writes are
then visible to the test. The test database must be one another process can open:
PostgreSQL (or a SQLite file), not SQLite's in-memory test database.

Each worker consumes its own queue (unique name unless `queues` is given), so a
leftover message from an earlier, interrupted run can never reach it and two test
processes can share one Redis.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import quote

from celery import Celery
from django.db import connection

BASE_DIR = Path(__file__).resolve().parent.parent
READY_TIMEOUT = 60  # seconds; a cold start imports Django and connects to Redis in ~3 s


def other_sessions() -> list[int]:
    """Backend pids of the other sessions on the test database (the processes a test
    started end theirs a moment after they exit)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid()"
        )
        return [row[0] for row in cursor.fetchall()]


def database_url() -> str:
    """DATABASE_URL of the database this test process uses (the test database)."""
    db = connection.settings_dict
    if db["ENGINE"] == "django.db.backends.postgresql":
        user = quote(db["USER"] or "", safe="")
        password = f":{quote(db['PASSWORD'], safe='')}" if db["PASSWORD"] else ""
        auth = f"{user}{password}@" if user else ""
        port = f":{db['PORT']}" if db["PORT"] else ""
        return f"postgres://{auth}{db['HOST'] or ''}{port}/{quote(db['NAME'], safe='')}"
    if db["ENGINE"] == "django.db.backends.sqlite3" and not connection.is_in_memory_db():
        return f"sqlite:///{Path(db['NAME']).resolve()}"
    raise RuntimeError(
        f"a worker process cannot open this test database ({db['ENGINE']} {db['NAME']!r}); "
        "use PostgreSQL (DATABASE_URL=postgres://...)"
    )


class Worker:
    """A running worker: send it tasks, read its log."""

    def __init__(
        self,
        process: subprocess.Popen,
        broker_url: str,
        queues: list[str],
        hostname: str,
        log_path: Path,
    ) -> None:
        self.process = process
        self.broker_url = broker_url
        self.queues = queues
        self.hostname = hostname
        self.log_path = log_path
        self._final_log: str | None = None  # kept when stopped: the log file goes away
        # A client app of its own, so sending never depends on (or changes) the
        # eager configuration of the project's app in this process.
        self.client = Celery("tests-worker-client", broker=broker_url, set_as_current=False)
        self.client.conf.update(
            task_serializer="json", accept_content=["json"], broker_connection_retry_on_startup=True
        )

    def send(self, task_name: str, *args, queue: str | None = None, **kwargs) -> str:
        """Enqueue a task by name on this worker's (first) queue; returns the task id."""
        # An explicit connection: Celery prefers a CELERY_BROKER_URL environment variable
        # over the app's own broker setting, and CI sets one for another database.
        with self.client.connection_for_write(self.broker_url) as conn:
            result = self.client.send_task(
                task_name, args=args, kwargs=kwargs, queue=queue or self.queues[0], connection=conn
            )
        return result.id

    def log(self) -> str:
        """Everything the worker printed so far (also readable after it stopped)."""
        if self._final_log is not None:
            return self._final_log
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def alive(self) -> bool:
        return self.process.poll() is None

    def _wait_ready(self, timeout: float) -> None:
        ready_line = f"{self.hostname} ready."
        deadline = time.monotonic() + timeout
        while ready_line not in self.log():
            if not self.alive():
                raise RuntimeError(
                    f"the Celery worker exited ({self.process.returncode}) "
                    f"before it was ready:\n{self.log()[-4000:]}"
                )
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"the Celery worker was not ready within {timeout} s:\n{self.log()[-4000:]}"
                )
            time.sleep(0.1)

    def stop(self, timeout: float = 15) -> None:
        """Warm shutdown (SIGTERM: finish the current task), then kill the whole group."""
        self.client.close()
        if self.alive():
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        # Pool children (prefork) share the group; none may outlive the test.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self._final_log = self.log()


@contextlib.contextmanager
def running_worker(
    broker_url: str,
    extra_env: dict[str, str] | None = None,
    queues: list[str] | None = None,
    pool: str = "solo",
    concurrency: int = 1,
) -> Iterator[Worker]:
    """Start `celery -A smtplog worker` on `broker_url` and the test database.

    Yields once the worker logged that it is ready; stops it on exit. `extra_env`
    adds or overrides environment variables of the worker (e.g. EMAIL_FILE_PATH to
    collect its mail as .eml files, or SMTPLOG_* settings). The default `solo` pool
    runs one task at a time in the worker process itself; pass pool="prefork" and a
    concurrency to test concurrent workers.
    """
    queues = queues or [f"test-{uuid.uuid4().hex[:12]}"]
    hostname = f"test-{uuid.uuid4().hex[:8]}@localhost"
    env = dict(os.environ)
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "smtplog.settings",
            "CELERY_BROKER_URL": broker_url,
            "DATABASE_URL": database_url(),
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(extra_env or {})
    command = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "smtplog",
        "worker",
        "--hostname",
        hostname,
        "--queues",
        ",".join(queues),
        "--pool",
        pool,
        "--concurrency",
        str(concurrency),
        "--loglevel",
        "INFO",
        # Tests need no cluster chatter; without these the start takes seconds longer.
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
    ]
    with tempfile.TemporaryDirectory(prefix="celery-worker-") as tmp:
        log_path = Path(tmp) / "worker.log"
        with log_path.open("wb") as log_file:
            process = subprocess.Popen(
                command,
                cwd=BASE_DIR,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # its own group: stop() ends all
        worker = Worker(process, broker_url, queues, hostname, log_path)
        try:
            worker._wait_ready(READY_TIMEOUT)
            yield worker
        finally:
            worker.stop()


def wait_until(
    predicate: Callable[[], object],
    timeout: float = 30,
    what: str = "the condition",
    worker: Worker | None = None,
    interval: float = 0.2,
) -> object:
    """Poll until predicate() is true (no result backend: tests watch the database)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        died = worker is not None and not worker.alive()
        if died or time.monotonic() > deadline:
            why = "the worker exited" if died else f"timed out after {timeout} s"
            log = f"\nworker log:\n{worker.log()[-4000:]}" if worker else ""
            raise AssertionError(f"{why} waiting for {what}{log}")
        time.sleep(interval)

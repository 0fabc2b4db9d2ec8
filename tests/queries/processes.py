"""Service processes of the end-to-end tests: a throwaway Redis, the SMTP sink, gunicorn.

Each runs in its own process group and is killed at the end of its `with` block.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from tests.services import free_port, redis_answers

BASE_DIR = Path(__file__).resolve().parent.parent.parent


def _wait(check, what: str, process: subprocess.Popen, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited ({process.returncode}) before it was ready")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} was not ready within {timeout} s")
        time.sleep(0.1)


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def _start(command: list[str], log: Path, env: dict | None = None) -> subprocess.Popen:
    with log.open("ab") as out:
        return subprocess.Popen(
            command,
            cwd=BASE_DIR,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


class RedisServer:
    """A Redis of our own on a free port, which a test may stop and start again."""

    def __init__(self, program: str, directory: Path) -> None:
        self.program = program
        self.directory = directory
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        self.process = _start(
            [
                self.program,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.directory),
            ],
            self.directory / "redis.log",
        )
        _wait(lambda: redis_answers(self.url), "redis-server", self.process)

    def stop(self) -> None:
        if self.process is not None:
            _stop(self.process)
            self.process = None


@contextlib.contextmanager
def redis_server(program: str, directory: Path) -> Iterator[RedisServer]:
    server = RedisServer(program, directory)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@contextlib.contextmanager
def smtp_sink(
    directory: Path, fail_first: int = 0, refuse_rcpt_first: int = 0, rcpt_delay: float = 0
) -> Iterator[int]:
    """Yields the port of an aiosmtpd server saving messages under directory/mail."""
    port = free_port()
    log = directory / "smtp.log"
    process = _start(
        [
            sys.executable,
            str(Path(__file__).with_name("smtp_sink.py")),
            "--port",
            str(port),
            "--dir",
            str(directory / "mail"),
            "--fail-first",
            str(fail_first),
            "--refuse-rcpt-first",
            str(refuse_rcpt_first),
            "--rcpt-delay",
            str(rcpt_delay),
        ],
        log,
    )
    try:
        _wait(lambda: "ready" in log.read_text(), "the SMTP sink", process)
        yield port
    finally:
        _stop(process)


@contextlib.contextmanager
def drip_smtp(directory: Path, drip_at: str = "data", interval: float = 0.2) -> Iterator[int]:
    """Yields the port of an SMTP server answering a byte at a time (drip_smtp.py)."""
    port = free_port()
    log = directory / "drip-smtp.log"
    process = _start(
        [
            sys.executable,
            str(Path(__file__).with_name("drip_smtp.py")),
            "--port",
            str(port),
            "--interval",
            str(interval),
            "--drip-at",
            drip_at,
        ],
        log,
    )
    try:
        _wait(lambda: "ready" in log.read_text(), "the drip SMTP server", process)
        yield port
    finally:
        _stop(process)


@contextlib.contextmanager
def gunicorn(env: dict[str, str], directory: Path) -> Iterator[str]:
    """Yields the base URL of the site served by gunicorn with the production settings."""
    port = free_port()
    process = _start(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "smtplog.wsgi:application",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            "1",
            "--timeout",
            "60",
        ],
        directory / "gunicorn.log",
        env={**os.environ, **env},
    )
    base = f"http://127.0.0.1:{port}"

    def answers() -> bool:
        try:
            return urllib.request.urlopen(f"{base}/help/", timeout=2).status == 200
        except OSError:
            return False

    try:
        _wait(answers, "gunicorn", process, timeout=60)
        yield base
    finally:
        _stop(process)


def saved_mail(directory: Path) -> list[Path]:
    return sorted((directory / "mail").glob("*.eml"))

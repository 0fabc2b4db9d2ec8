"""The query form under load through the shipped deployment (locust).

    python bench/load.py [--users 50] [--duration 60] [--web-workers N]

Starts what deploy/ ships, as tests/deploy/test_nginx.py does: Debian's nginx with
deploy/nginx/smtplog.conf (TLS, a test certificate, loopback addresses) in front of
gunicorn with deploy/gunicorn.conf.py on its unix socket, the production settings (DEBUG
off, kept database connections), PostgreSQL (database smtplog_bench_load on
BENCH_DATABASE_URL's server, migrated, its queries and challenges emptied first) and a
throwaway redis-server as the broker (no worker: queued reports just wait).

Then --users locust users, arriving over 5 s, then measured for --duration seconds,
each repeating what a person does: a new TLS connection from an address of its own on
campus (127.U.C.1: user U's C-th visit, so the default per-address and per-client limits
apply as to real visitors), GET of the form, GET of its captcha image, and the POST of
the form with a fresh address, the challenge's answer (read from the database: the
bench's one shortcut) and the CSRF pair.
Between the page and the POST a person reads the page and types the captcha: --think
seconds (default 2 to 6, at random; a fast typist), then asks again at once. --think 0
removes it: every user posts and asks again at once, a stress test that saturates the
machine (the probe of issue 11 measured that way: 1.3 s GET p95 with 2 workers).

Prints, per request kind: count, median, p95 and failures; 5xx responses; requests per
second; and the CPU time used by gunicorn, nginx, PostgreSQL, locust and the rest of the
machine (figures on a shared machine mean little without it). Targets (issue 11): GET
p95 <= 300 ms, POST p95 <= 500 ms, no 5xx.
"""

# ruff: noqa: I001 - locust must be imported first: it patches ssl and socket for gevent.
from __future__ import annotations

import locust  # noqa: F401

import argparse
import http.client
import itertools
import os
import random
import re
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path

import gevent
import psycopg
from locust import User, events, task
from locust.env import Environment

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.report import cpu_seconds, machine_busy_seconds  # noqa: E402
from tests.deploy.stack import HOST, collectstatic, running_stack, site_env  # noqa: E402
from tests.queries.processes import redis_server  # noqa: E402

DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/smtplog_bench_load"
HIDDEN = re.compile(r'name="(csrfmiddlewaretoken|token|begin|end|captcha_0)" value="([^"]*)"')
IMAGE = re.compile(r'<img src="([^"]+)"[^>]*class="captcha"')
BASE = {"url": "", "database": "", "think": (2.0, 6.0)}
NUMBERS = itertools.count(1)
FIVE_XX = {"count": 0}


def say(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


# One TLS context for every connection (building one per connection costs the load
# generator more than the handshake): the test certificate, on loopback, is not verified.
TLS = ssl.create_default_context()
TLS.check_hostname = False
TLS.verify_mode = ssl.CERT_NONE


class Visit:
    """One visitor's TLS connection from its own address, with its cookies.

    http.client, not requests: the load generator shares the machine's two cores with
    what it measures, and requests cost it about three times the CPU per request (locust
    took 10 ms a visit, a quarter of the machine). Each request is reported through
    locust's request event, as its own clients do; a redirect is followed inside the
    timed request, as a browser (and requests) does.
    """

    def __init__(self, source: str, fire) -> None:
        url = urllib.parse.urlsplit(BASE["url"])
        self.connection = http.client.HTTPSConnection(
            url.hostname, url.port, timeout=60, source_address=(source, 0), context=TLS
        )
        self.cookies: dict[str, str] = {}
        self.fire = fire

    def __enter__(self) -> Visit:
        return self

    def __exit__(self, *exc_info) -> None:
        self.connection.close()

    def request(
        self,
        method: str,
        path: str,
        name: str,
        fields: dict | None = None,
        redirect: str = "",
        expect: str = "",
    ) -> tuple[int, str]:
        """(status, text) of the request, or of the page it redirects to; (0, "") on a
        network error. A network error, a status of 400 or more, no redirect to a path
        starting with `redirect`, or a page without `expect` is reported as a failure."""
        started = time.perf_counter()
        status, body, location, failure = 0, b"", "", None
        try:
            status, body, location = self._send(method, path, fields)
            if status in (301, 302, 303) and location:
                location = urllib.parse.urlsplit(location).path
                status, body, _ = self._send("GET", location, None)
        except (OSError, http.client.HTTPException) as exc:
            failure = exc
        text = body.decode(errors="replace")
        if failure is None:
            if status >= 400:
                failure = RuntimeError(f"HTTP {status}")
            elif not location.startswith(redirect):
                failure = RuntimeError(f"HTTP {status}, not sent on to {redirect}")
            elif expect not in text:
                failure = RuntimeError(f"HTTP {status}, the page lacks {expect!r}")
        if status >= 500:
            FIVE_XX["count"] += 1
        self.fire(
            request_type=method,
            name=name,
            response_time=(time.perf_counter() - started) * 1000,
            response_length=len(body),
            exception=failure,
            context={},
        )
        return status, text

    def _send(self, method: str, path: str, fields: dict | None) -> tuple[int, bytes, str]:
        headers = {"Host": HOST, "Origin": f"https://{HOST}", "Referer": f"https://{HOST}/"}
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        body = None
        if fields is not None:
            body = urllib.parse.urlencode(fields)
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        self.connection.request(method, path, body=body, headers=headers)
        response = self.connection.getresponse()
        data = response.read()
        for cookie in response.headers.get_all("Set-Cookie") or []:
            name, _, rest = cookie.partition("=")
            self.cookies[name.strip()] = rest.split(";", 1)[0]
        return response.status, data, response.headers.get("Location", "")


class Visitor(User):
    """A person asking for a report: the page, its captcha, the POST."""

    host = "https://smtplog.test"

    def on_start(self) -> None:
        self.number = next(NUMBERS)
        self.visits = 0
        self.database = psycopg.connect(BASE["database"], autocommit=True)

    def answer(self, key: str) -> str:
        """The challenge's answer, read outside the event loop (psycopg blocks)."""

        def read() -> str:
            row = self.database.execute(
                "SELECT response FROM captcha_captchastore WHERE hashkey = %s", [key]
            ).fetchone()
            return row[0] if row else ""

        return gevent.get_hub().threadpool.apply(read)

    @task
    def ask(self) -> None:
        self.visits += 1
        source = f"127.{self.number % 250 + 1}.{self.visits // 250 % 250}.{self.visits % 250 + 1}"
        with Visit(source, self.environment.events.request.fire) as visit:  # one TLS connection
            status, page = visit.request("GET", "/", "GET /")
            if status != 200:
                return
            fields = dict(HIDDEN.findall(page))
            image = IMAGE.search(page)
            visit.request("GET", image[1], "GET captcha image")
            gevent.sleep(random.uniform(*BASE["think"]))  # reading, typing the captcha
            address = f"u{self.number}v{self.visits}@cs.nthu.edu.tw"
            fields.update(email=address, language="en", captcha_1=self.answer(fields["captcha_0"]))
            visit.request("POST", "/", "POST /", fields, redirect="/answer/", expect=address)


def children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [pid, *map(int, path.read_text().split())] if path.exists() else [pid]


class DatabaseCPU:
    """CPU time of the bench database's server processes, sampled twice a second.

    Kept connections are replaced after DB_CONN_MAX_AGE, so the processes come and go;
    each one's last reading counts (what a process used between two samples before it
    ended is missed: a few milliseconds).
    """

    def __init__(self, database: str) -> None:
        self.marker = f" {database} ".encode()
        self.first: dict[int, float] = {}
        self.last: dict[int, float] = {}
        self.sampler = gevent.spawn(self.sample_forever)

    def pids(self) -> list[int]:
        found = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    if self.marker in (entry / "cmdline").read_bytes():
                        found.append(int(entry.name))
                except OSError:
                    continue
        return found

    def sample_forever(self) -> None:
        while True:
            for pid in self.pids():
                used = cpu_seconds([pid])
                self.first.setdefault(pid, used)
                self.last[pid] = used
            gevent.sleep(0.5)

    def seconds(self) -> float:
        self.sampler.kill()
        return sum(self.last[pid] - self.first[pid] for pid in self.last)


def prepare_database(url: str, env: dict[str, str]) -> None:
    server, name = url.rsplit("/", 1)
    with psycopg.connect(f"{server}/postgres", autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--verbosity", "0"],
        cwd=REPO,
        env={**os.environ, **env},
        check=True,
    )
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("TRUNCATE queries_query, captcha_captchastore, queries_clienthits")


def warm_up(stack) -> None:
    """Each gunicorn worker loads its code and opens its database connection."""
    for _ in range(40):
        stack.request("GET", "/", source="127.0.0.2")


RAMP_UP = 5  # seconds over which the users arrive; not measured


def run_load(users: int, duration: int) -> Environment:
    """Users arrive over RAMP_UP seconds (not all in the same instant), then `duration`
    seconds are measured."""
    environment = Environment(user_classes=[Visitor], events=events)
    runner = environment.create_local_runner()
    runner.start(users, spawn_rate=users / RAMP_UP)
    gevent.sleep(RAMP_UP)
    environment.stats.reset_all()
    FIVE_XX["count"] = 0
    gevent.spawn_later(duration, runner.quit)
    runner.greenlet.join()
    return environment


def report(environment: Environment, cpu: dict[str, float], seconds: float) -> None:
    """The figures; `seconds` measured, the CPU times over the ramp-up and those seconds."""
    stats = environment.stats
    say(f"{'request':<20} {'count':>7} {'median':>8} {'p95':>8} {'max':>8} {'failed':>7}")
    for name, method in (("GET /", "GET"), ("GET captcha image", "GET"), ("POST /", "POST")):
        entry = stats.get(name, method)
        say(
            f"{name:<20} {entry.num_requests:>7} {entry.median_response_time:>6.0f}ms "
            f"{entry.get_response_time_percentile(0.95):>6.0f}ms "
            f"{entry.max_response_time:>6.0f}ms {entry.num_failures:>7}"
        )
    for error in list(stats.errors.values())[:5]:
        say(f"  failure x{error.occurrences}: {error.method} {error.name}: {error.error}"[:300])
    total = stats.total
    say(
        f"all: {total.num_requests} requests, {total.num_requests / seconds:.0f}/s, "
        f"{total.num_failures} failed, {FIVE_XX['count']} with a 5xx; "
        f"{stats.get('POST /', 'POST').num_requests / seconds:.0f} visits/s"
    )
    get95 = stats.get("GET /", "GET").get_response_time_percentile(0.95)
    post95 = stats.get("POST /", "POST").get_response_time_percentile(0.95)
    say(
        f"targets: GET p95 {get95:.0f} ms (<= 300: {'met' if get95 <= 300 else 'MISSED'}), "
        f"POST p95 {post95:.0f} ms (<= 500: {'met' if post95 <= 500 else 'MISSED'}), "
        f"5xx {FIVE_XX['count']} (0: {'met' if not FIVE_XX['count'] else 'MISSED'})"
    )
    cores = os.cpu_count() or 1
    parts = ", ".join(f"{name} {used:.1f} s" for name, used in cpu.items() if name != "machine")
    other = cpu["machine"] - sum(v for k, v in cpu.items() if k != "machine")
    say(
        f"CPU over {seconds + RAMP_UP:.0f} s on {cores} cores "
        f"({(seconds + RAMP_UP) * cores:.0f} core-s): {parts}; "
        f"CPU by other processes {max(other, 0):.1f} s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--duration", type=int, default=60, help="seconds of load")
    parser.add_argument(
        "--web-workers", type=int, default=None, help="gunicorn workers (default: as shipped)"
    )
    parser.add_argument(
        "--think",
        type=float,
        nargs=2,
        default=[2.0, 6.0],
        metavar=("MIN", "MAX"),
        help="seconds between the page and the POST (0 0: none)",
    )
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_URL))
    args = parser.parse_args()
    BASE["think"] = tuple(args.think)
    BASE["database"] = args.database_url
    with tempfile.TemporaryDirectory(prefix="bench-load-") as tmp:
        prefix = Path(tmp)
        static_root = prefix / "static"
        with redis_server("redis-server", prefix) as redis:
            env = site_env(args.database_url, redis.url, static_root)
            # Every visitor comes from its own loopback address (127.0.0.0/8: campus).
            env.update(SMTPLOG_CAMPUS_NETWORKS="127.0.0.0/8", LOG_LEVEL="WARNING")
            prepare_database(args.database_url, env)
            collectstatic(env)
            with running_stack(prefix, env, static_root, workers=args.web_workers) as stack:
                BASE["url"] = f"https://127.0.0.1:{stack.ports['https']}"
                nginx = [int((prefix / "nginx.pid").read_text())]
                warm_up(stack)
                groups = {
                    "gunicorn": children(stack.gunicorn.pid),
                    "nginx": children(nginx[0]),
                    "locust": [os.getpid()],
                }
                say(
                    f"{args.users} users, {args.duration} s, think time {args.think[0]:g}-"
                    f"{args.think[1]:g} s, gunicorn workers: {len(groups['gunicorn']) - 1}, "
                    "through nginx with TLS per visit"
                )
                database = DatabaseCPU(args.database_url.rsplit("/", 1)[1])
                before = {name: cpu_seconds(pids) for name, pids in groups.items()}
                before["machine"] = machine_busy_seconds()
                started = time.monotonic()
                environment = run_load(args.users, args.duration)
                seconds = time.monotonic() - started - RAMP_UP
                cpu = {name: cpu_seconds(pids) - before[name] for name, pids in groups.items()}
                cpu["postgres"] = database.seconds()
                cpu["machine"] = machine_busy_seconds() - before["machine"]
    report(environment, cpu, seconds)
    say(f"load average {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} (1, 5 min)")


if __name__ == "__main__":
    main()

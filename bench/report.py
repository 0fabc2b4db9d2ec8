"""Report speed against zgrep, and the query form's POST throughput.

    python bench/report.py [--events 10000000] [--rebuild] [--duration 20] [--skip-post]
                           [--web-workers 4] [--web-class sync|gthread] [--web-threads N]

1. The store: database smtplog_bench_report on BENCH_DATABASE_URL's server, built once
   with INSERT ... SELECT generate_series (kept, migrated to the current schema and reused
   while it holds --events events; --rebuild starts over): 30,000 everyday senders, nine
   bulk senders and one heavy sender (0.2% of all events), 31 days, the daily counters
   summed from the events. The month's log files (one gzip file per day, a status line
   per event and a qmgr from= line per two) are written from the same rows with psql's
   \\copy into bench/out/report-logs/.
2. Times build_report() for the heaviest sender (the first, cold run and the median of
   five) and `zgrep -c ADDRESS` over the month's files; prints both and the ratio
   (target <= 0.01).
3. Serves the form with gunicorn (production settings, DEBUG off, persistent database
   connections; by default 4 sync workers, as the README deploys it; --web-* to change)
   on that database, the Celery broker a throwaway redis-server (no worker: queued
   reports just wait), and drives POSTs with wrk after a short warm-up. Each request does
   a real user's work: a valid CSRF pair, its own campus client address in
   X-Forwarded-For (one trusted proxy; the default limits apply), its own address and
   form token, and a captcha challenge of its own, created beforehand as the GET of the
   page would, with a known answer (the bench's only shortcut: the answer is checked
   against the database and the challenge burnt, as for a user). Prints requests/s, p95
   and errors (targets >= 200/s, p95 <= 300 ms, no errors), the tasks queued and the
   broker and database connections used, and the CPU time per request of the web
   workers, the database and wrk, with how busy the machine was (other processes too).
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
OUT = REPO / "bench" / "out"
LOGS = OUT / "report-logs"
HEAVY = "heavy@cs.nthu.edu.tw"
DAYS = 31
CAPTCHA_ANSWER = "benchx"


def say(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


# 1. The store and the log files

EVENT_COLUMNS = (
    "time, day, sender, status, relay, queue_id, client_ip, sasl_username, "
    "recipient, next_hop, dsn, delay, response"
)
# One row per n in 1..N, in time order over the month; sender, status and reply follow
# from n by fixed arithmetic, so the month is the same on every build.
EVENTS_SQL = f"""
INSERT INTO smtplog_event ({EVENT_COLUMNS})
SELECT t, (t AT TIME ZONE 'Asia/Taipei')::date, sender, status, 'smtp' || (n %% 3 + 1),
       upper(lpad(to_hex((n * 2654435761) %% 1099511627776), 10, '0')),
       ('140.114.' || (n * 7919 %% 30000 %% 250) || '.' || (n * 7919 %% 200 + 1))::inet,
       CASE WHEN status = 'auth_rcv' THEN split_part(sender, '@', 1) ELSE '' END,
       CASE WHEN status IN ('auth_rcv', 'auth_blk') THEN ''
            ELSE 'r' || (n %% 50000) || '@example' || (n %% 97) || '.com' END,
       CASE WHEN status IN ('sent', 'bounced', 'deferred')
            THEN 'mx' || (n %% 97) || '.example.com[192.0.2.' || (n %% 97 + 1) || ']:25'
            ELSE '' END,
       CASE status WHEN 'sent' THEN '2.0.0' WHEN 'deferred' THEN '4.2.2'
                   WHEN 'bounced' THEN '5.1.1' WHEN 'expired' THEN '4.4.1' ELSE '' END,
       (n %% 300) / 10.0,
       CASE status
         WHEN 'sent' THEN '250 2.0.0 Ok: queued as ' || upper(to_hex(n))
         WHEN 'deferred' THEN '452 4.2.2 Mailbox full'
         WHEN 'bounced' THEN '550 5.1.1 <r@example.com>: Recipient address rejected: User unknown'
         WHEN 'expired' THEN 'message expired, returned to sender'
         WHEN 'auth_blk' THEN 'SASL LOGIN authentication failed: authentication failure'
         ELSE '' END
FROM (
  SELECT n, %(start)s::timestamptz + (n - 1) * (%(days)s * interval '1 day') / %(total)s AS t,
         CASE WHEN n %% 1000 < 2 THEN '{HEAVY}'
              WHEN n %% 1000 < 11 THEN 'bulk' || (n %% 1000 - 2) || '@ee.nthu.edu.tw'
              ELSE 'u' || (n * 7919 %% 30000) || '@cs.nthu.edu.tw' END AS sender,
         CASE WHEN n * 31 %% 100 < 85 THEN 'sent' WHEN n * 31 %% 100 < 92 THEN 'deferred'
              WHEN n * 31 %% 100 < 96 THEN 'bounced' WHEN n * 31 %% 100 < 97 THEN 'expired'
              WHEN n * 31 %% 100 < 99 THEN 'auth_rcv' ELSE 'auth_blk' END AS status
  FROM generate_series(%(first)s::bigint, %(last)s::bigint) AS n
) AS e
"""
COUNTERS_SQL = """
INSERT INTO smtplog_dailycounter (sender, day, auth_blk, auth_rcv, bounced, deferred, expired,
                                  sent)
SELECT sender, day, count(*) FILTER (WHERE status = 'auth_blk'),
       count(*) FILTER (WHERE status = 'auth_rcv'), count(*) FILTER (WHERE status = 'bounced'),
       count(*) FILTER (WHERE status = 'deferred'), count(*) FILTER (WHERE status = 'expired'),
       count(*) FILTER (WHERE status = 'sent')
FROM smtplog_event GROUP BY sender, day
"""
# A day's log lines: each event's status line and, for every second event, the qmgr line
# naming its envelope sender (what `zgrep ADDRESS` finds).
LOG_SQL = """
SELECT line FROM (
  SELECT id, 1 AS k, to_char(time AT TIME ZONE 'Asia/Taipei', 'Mon DD HH24:MI:SS') || ' '
         || relay || ' postfix/qmgr[' || (1000 + id % 30000) || ']: ' || queue_id
         || ': from=<' || sender || '>, size=' || (2000 + id % 90000) || ', nrcpt=2 (queue active)'
         AS line
  FROM smtplog_event WHERE day = '{day}' AND id % 2 = 0
  UNION ALL
  SELECT id, 2, to_char(time AT TIME ZONE 'Asia/Taipei', 'Mon DD HH24:MI:SS') || ' ' || relay
         || ' postfix/smtp[' || (2000 + id % 30000) || ']: ' || queue_id || ': to=<'
         || recipient || '>, relay=' || coalesce(nullif(next_hop, ''), 'none') || ', delay='
         || delay || ', delays=0.1/0/0.2/0.3, dsn=' || coalesce(nullif(dsn, ''), '2.0.0')
         || ', status=' || status || ' (' || response || ')'
  FROM smtplog_event WHERE day = '{day}'
) AS lines ORDER BY id, k
"""


def psql(url: str, sql: str, *extra: str) -> str:
    result = subprocess.run(
        ["psql", url, "-v", "ON_ERROR_STOP=1", "-qtA", "-c", sql, *extra],
        check=True,
        capture_output=True,
        text=True,
    )
    return result.stdout.strip()


def build_store(url: str, events: int, rebuild: bool) -> None:
    import psycopg

    base, name = url.rsplit("/", 1)
    with psycopg.connect(base + "/postgres", autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
    env = {**os.environ, "DATABASE_URL": url, "DJANGO_SETTINGS_MODULE": "smtplog.settings"}
    if exists and not rebuild:
        with psycopg.connect(url) as conn:
            have = conn.execute("SELECT count(*) FROM smtplog_event").fetchone()[0]
        if have == events:
            # The schema of today's code (its indexes decide the report's plan).
            subprocess.run(
                [sys.executable, str(REPO / "manage.py"), "migrate", "-v0"], env=env, check=True
            )
            say(f"store: reusing {have:,} events in {name}")
            return
    say(f"store: building {events:,} events in {name} (a few minutes, once)")
    started = time.perf_counter()
    with psycopg.connect(base + "/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    subprocess.run([sys.executable, str(REPO / "manage.py"), "migrate", "-v0"], env=env, check=True)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SET maintenance_work_mem = '1GB'")
        indexes = conn.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = "
            "'smtplog_event' AND indexname NOT LIKE '%pkey'"
        ).fetchall()
        for index, _definition in indexes:  # built once, after the load: much faster
            conn.execute(f'DROP INDEX "{index}"')
        end = time.time() - time.time() % 86400 + 86400  # the month ends tomorrow (UTC)
        start = time.strftime("%Y-%m-%d %H:%M:%S+00", time.gmtime(end - DAYS * 86400))
        step = 1_000_000
        for first in range(1, events + 1, step):
            conn.execute(
                EVENTS_SQL,
                {
                    "start": start,
                    "days": DAYS,
                    "total": events,
                    "first": first,
                    "last": min(first + step - 1, events),
                },
            )
            say(f"  {min(first + step - 1, events):,} events")
        for _index, definition in indexes:
            conn.execute(definition)
        conn.execute(COUNTERS_SQL)
        conn.execute("VACUUM ANALYZE")
    say(f"store: built in {time.perf_counter() - started:.0f} s")
    shutil.rmtree(LOGS, ignore_errors=True)


def write_logs(url: str) -> list[Path]:
    files = sorted(LOGS.glob("mail.log-*.gz"))
    if files:
        return files
    LOGS.mkdir(parents=True, exist_ok=True)
    days = psql(url, "SELECT DISTINCT day FROM smtplog_event ORDER BY day").split()
    say(f"logs: writing {len(days)} daily files to {LOGS.relative_to(REPO)}")
    started = time.perf_counter()
    for day in days:
        path = LOGS / f"mail.log-{day.replace('-', '')}.gz"
        query = " ".join(LOG_SQL.format(day=day).split())
        psql(url, f"\\copy ({query}) TO PROGRAM 'gzip -c > {path}'")
    say(f"logs: written in {time.perf_counter() - started:.0f} s")
    return sorted(LOGS.glob("mail.log-*.gz"))


# 2. The report against zgrep


def time_report(url: str) -> tuple[float, float, int, str]:
    os.environ["DATABASE_URL"] = url
    os.environ["DJANGO_SETTINGS_MODULE"] = "smtplog.settings"
    import django

    django.setup()
    from django.db import connection

    from queries.forms import default_range
    from queries.report import build_report
    from smtplog.models import DailyCounter

    heaviest = (
        DailyCounter.objects.values("sender")
        .annotate(n=django.db.models.Sum("total"))
        .order_by("-n")
        .first()
    )["sender"]
    begin, end = default_range()
    timings, rows = [], 0
    for n in range(6):
        if n == 1:  # how busy the machine was during the five timed after the first
            busy, own = machine_busy_seconds(), time.process_time()
        started = time.perf_counter()
        report = build_report(heaviest, begin, end)
        timings.append(time.perf_counter() - started)
        rows = len(report.rows)
    busy, own = machine_busy_seconds() - busy, time.process_time() - own
    connection.close()
    say(
        f"machine during report {busy / sum(timings[1:]):.2f} of {os.cpu_count()} cores busy, "
        f"{max(busy - own, 0) / sum(timings[1:]):.2f} of them not this process (the database "
        "included)"
    )
    return timings[0], statistics.median(timings[1:]), rows, heaviest


def time_zgrep(files: list[Path], address: str) -> tuple[float, int]:
    started = time.perf_counter()
    result = subprocess.run(
        ["zgrep", "-c", address, *map(str, files)], capture_output=True, text=True, check=True
    )
    seconds = time.perf_counter() - started
    return seconds, sum(int(line.rsplit(":", 1)[1]) for line in result.stdout.split())


# 3. POST throughput

WRK_SCRIPT = """
local thread_count = 0
function setup(thread)
  thread:set("tid", thread_count)
  thread_count = thread_count + 1
end
function init(args)
  n = 0
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
  wrk.headers["Cookie"] = "csrftoken=" .. CSRF
end
-- Each request from its own campus address, as the reverse proxy in front reports it.
local function client(i)
  return "140.114." .. (math.floor(i / 250) % 250) .. "." .. (i % 250 + 1)
end
function request()
  n = n + 1
  local i = tid * 1000000 + n
  local body = "csrfmiddlewaretoken=" .. CSRF .. "&language=en&email=bench" .. i
    .. "%40cs.nthu.edu.tw&begin=" .. BEGIN .. "&end=" .. END
    .. "&captcha_0=" .. string.format("%040d", i) .. "&captcha_1=ANSWER"
    .. "&token=" .. string.format("%032x", i)
  wrk.headers["X-Forwarded-For"] = client(i)
  return wrk.format(nil, "/", nil, body)
end
function done(summary, latency, requests)
  io.write(string.format("RESULT %d %d %.1f %.1f %d %d\\n", summary.requests,
    summary.duration, latency:percentile(95) / 1000, latency.mean / 1000,
    summary.errors.status, summary.errors.connect + summary.errors.read
    + summary.errors.write + summary.errors.timeout))
end
"""


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time the processes have used so far (Linux /proc)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / ticks


def machine_busy_seconds() -> float:
    """CPU time all processes of the machine have used so far, every core summed."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(fields[:8]) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")  # - idle, iowait


def web_pids(master: int) -> list[int]:
    """The gunicorn master and its workers."""
    children = Path(f"/proc/{master}/task/{master}/children")
    return [master, *map(int, children.read_text().split())] if children.exists() else [master]


def database_pids(url: str) -> list[int]:
    name = url.rsplit("/", 1)[1]
    return [
        int(pid)
        for pid in psql(
            url,
            "SELECT pid FROM pg_stat_activity WHERE datname = "
            f"'{name}' AND pid <> pg_backend_pid()",
        ).split()
    ]


def post_throughput(
    url: str, duration: int, threads: int, connections: int, gunicorn_args: list[str]
) -> None:
    from tests.services import free_port

    wrk = shutil.which("wrk")
    if not wrk:
        say("POST: wrk is not installed (apt-get install -y wrk); skipped")
        return
    import datetime as dt

    from django.utils import timezone

    end = timezone.localdate()  # Django is set up by time_report()
    begin = end - dt.timedelta(days=20)
    with tempfile.TemporaryDirectory(prefix="bench-report-") as tmp:
        tmp = Path(tmp)
        redis_port, web_port = free_port(), free_port()
        redis = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(redis_port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(tmp),
            ],
            stdout=subprocess.DEVNULL,
            start_new_session=True,
        )
        env = {
            **os.environ,
            "DATABASE_URL": url,
            "DJANGO_SETTINGS_MODULE": "smtplog.settings",
            "CELERY_BROKER_URL": f"redis://127.0.0.1:{redis_port}/0",
            "DEBUG": "0",
            "SECRET_KEY": "bench-" + "x" * 60,
            "SECURE_SSL_REDIRECT": "0",
            "SESSION_COOKIE_SECURE": "0",
            "CSRF_COOKIE_SECURE": "0",
            # Behind one reverse proxy (wrk plays it): the client is the last
            # X-Forwarded-For entry, a different campus address for each request, so
            # the default per-IP limit holds and is counted as for real users.
            "SMTPLOG_TRUSTED_PROXY_COUNT": "1",
            "LOG_LEVEL": "INFO",  # the default: a line per query, as in production
            "DB_CONN_MAX_AGE": "60",  # persistent connections, as a deployment runs
            "STATIC_ROOT": str(tmp / "static"),
        }
        (tmp / "static").mkdir()
        web_log = (tmp / "web.log").open("w")
        web = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "smtplog.wsgi:application",
                "--bind",
                f"127.0.0.1:{web_port}",
                *gunicorn_args,
                "--log-level",
                "warning",
            ],
            cwd=REPO,
            env=env,
            stdout=web_log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            rows = threads * 1_000_000
            psql(url, "TRUNCATE queries_query; DELETE FROM captcha_captchastore;")
            # The challenges the page views would have created: one per request to come.
            psql(
                url,
                "INSERT INTO captcha_captchastore (challenge, response, hashkey, "
                f"expiration) SELECT 'BENCHX', '{CAPTCHA_ANSWER}', "
                "lpad((t * 1000000 + n)::text, 40, '0'), now() + interval '1 hour' "
                f"FROM generate_series(0, {threads - 1}) AS t, "
                f"generate_series(1, {rows // threads // 50}) AS n",
            )
            base = f"http://127.0.0.1:{web_port}"
            for _ in range(100):
                try:
                    urllib.request.urlopen(f"{base}/help/", timeout=2)
                    break
                except OSError:
                    time.sleep(0.2)
            script = tmp / "post.lua"
            csrf = "B" * 32
            script.write_text(
                f'CSRF = "{csrf}"\nBEGIN = "{begin}"\nEND = "{end}"\n'
                + WRK_SCRIPT.replace("ANSWER", CAPTCHA_ANSWER)
            )
            # Warm every worker up (imports, templates, connections) before the timed run.
            subprocess.run(
                [wrk, "-t", "1", "-c", str(connections), "-d", "2s", f"{base}/help/"],
                capture_output=True,
                check=True,
            )
            pids = {"web": web_pids(web.pid), "database": database_pids(url)}
            before = {name: cpu_seconds(group) for name, group in pids.items()}
            before["machine"] = machine_busy_seconds()
            load = subprocess.Popen(
                [
                    wrk,
                    "-t",
                    str(threads),
                    "-c",
                    str(connections),
                    "-d",
                    f"{duration}s",
                    "--timeout",
                    "5s",
                    "-s",
                    str(script),
                    base,
                ],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            wrk_before = resource.getrusage(resource.RUSAGE_CHILDREN)
            wrk_before = wrk_before.ru_utime + wrk_before.ru_stime
            stdout, stderr = load.communicate()
            if load.returncode:
                raise SystemExit(f"wrk failed: {stderr}")
            pids["database"] = database_pids(url)  # connections opened during the run too
            used = {name: cpu_seconds(group) - before.get(name, 0) for name, group in pids.items()}
            used["wrk"] = resource.getrusage(resource.RUSAGE_CHILDREN)
            used["wrk"] = used["wrk"].ru_utime + used["wrk"].ru_stime - wrk_before
            used["machine"] = machine_busy_seconds() - before["machine"]
            result = subprocess.CompletedProcess(load.args, 0, stdout, stderr)
            line = next(x for x in result.stdout.splitlines() if x.startswith("RESULT"))
            total, micros, p95, mean, status_errors, socket_errors = line.split()[1:]
            recorded = psql(url, "SELECT count(*) FROM queries_query WHERE outcome = 'pending'")
            import redis as redis_client

            broker = redis_client.Redis(port=redis_port)
            queued = broker.llen("celery")
            opened = broker.info("stats")["total_connections_received"] - 1  # this one
            broker.close()
            per_second = int(total) / (int(micros) / 1e6)
            say(
                f"POST /               {per_second:,.0f} requests/s over {duration} s  "
                "(target >= 200)"
            )
            say(
                f"POST p95 latency     {float(p95):.0f} ms (mean {float(mean):.0f} ms)  "
                "(target <= 300)"
            )
            say(
                f"POST errors          {status_errors} non-2xx, {socket_errors} socket  "
                f"({recorded} queries recorded and enqueued of {total} requests)"
            )
            say(
                f"POST broker          {queued} tasks queued over {opened} Redis connections; "
                f"{len(pids['database'])} database connections"
            )
            per = {name: seconds * 1000 / int(total) for name, seconds in used.items()}
            say(
                f"POST CPU per request web {per['web']:.1f} ms, database {per['database']:.1f} "
                f"ms, wrk {per['wrk']:.1f} ms  (gunicorn {' '.join(gunicorn_args)})"
            )
            other = used["machine"] - used["web"] - used["database"] - used["wrk"]
            say(
                f"machine during POST  {used['machine'] / duration:.2f} of {os.cpu_count()} cores "
                f"busy, {max(other, 0) / duration:.2f} of them other processes"
            )
        finally:
            for process in (web, redis):
                process.terminate()
                process.wait(10)
            web_log.close()
            if warnings := [
                line for line in (tmp / "web.log").read_text().splitlines() if " INFO " not in line
            ]:
                say("web log (other than INFO):\n  " + "\n  ".join(warnings[-10:]))
            psql(url, "TRUNCATE queries_query; DELETE FROM captcha_captchastore;")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--rebuild", action="store_true", help="build the store again")
    parser.add_argument(
        "--database-url",
        default=os.environ.get(
            "BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/smtplog_bench_report"
        ),
    )
    parser.add_argument("--duration", type=int, default=20, help="seconds of POST load")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--web-workers", type=int, default=4, help="gunicorn workers")
    parser.add_argument("--web-class", default="sync", help="gunicorn worker class")
    parser.add_argument("--web-threads", type=int, default=1, help="threads per gthread worker")
    parser.add_argument("--skip-post", action="store_true")
    parser.add_argument("--skip-report", action="store_true")
    args = parser.parse_args()

    build_store(args.database_url, args.events, args.rebuild)
    files = write_logs(args.database_url)
    cold, warm, rows, heaviest = time_report(args.database_url)
    if not args.skip_report:
        zgrep, found = time_zgrep(files, heaviest)
        size = sum(f.stat().st_size for f in files) / 2**20
        say(f"heaviest sender      {heaviest}: {rows:,} detail rows")
        say(
            f"build_report         {cold * 1000:.0f} ms first run, {warm * 1000:.0f} ms "
            "median of the next five"
        )
        say(
            f"zgrep -c             {zgrep:.1f} s over {len(files)} files, {size:,.0f} MB "
            f"gzip ({found:,} lines)"
        )
        say(
            f"ratio report/zgrep   {warm / zgrep:.4f} (first run {cold / zgrep:.4f})  "
            "(target <= 0.01)"
        )
    if not args.skip_post:
        gunicorn_args = ["--workers", str(args.web_workers), "--worker-class", args.web_class]
        if args.web_class == "gthread":
            gunicorn_args += ["--threads", str(args.web_threads)]
        post_throughput(
            args.database_url, args.duration, args.threads, args.connections, gunicorn_args
        )
    # Figures on a shared machine mean little without this.
    say(
        "load average         {:.2f} {:.2f} {:.2f} ({} cores)".format(
            *os.getloadavg(), os.cpu_count()
        )
    )


if __name__ == "__main__":
    main()

"""The message trace on the 10M-event store, and what its indexes cost ingestion.

    python bench/trace.py [--samples 15] [--skip-pages] [--ingest-cost N]

1. The store: bench/report.py's (database smtplog_bench_report; built there if missing,
   else reused), migrated to this code. That store holds events only, each with its own
   queue ID; a real one also holds the messages. So, once, every event that belongs to a
   message (not the refusals) gets one, as a real relay logs it: the message as received
   (client, SASL login, size, Message-ID), handed to the content filter and re-queued
   under the event's queue ID (origin -> re-queued, keeping client, login and
   Message-ID, as every message of the sample relays is). That is 2 messages per event,
   more than real mail has (several recipients and attempts per message), so the
   message indexes are deeper than they would be. The events are left as they are (no
   rewrite of the shared table): they carry no `message` link, and the trace places
   them by queue ID and time, as it does for a reject logged under a queue ID.
2. Times, in this process, through Django's test client (every middleware, the view,
   the template, the audit row written), as a staff user: the search page for a queue
   ID, for a Message-ID, for a sender prefix over the last 24 hours, and a message's
   page, each for --samples different values; the first run of each, then the median of
   warm runs (each value again). Targets: queue ID and Message-ID <= 50 ms, sender
   prefix <= 200 ms, message page <= 100 ms. Prints how busy the machine was.
3. --ingest-cost N: bench/ingest.py's month ingested N times with the schema of this
   code and N times without the trace's indexes (as before smtplog 0003 and 0006), in
   turn, each going first every other time: the wall time and the
   database server's CPU time of each run, the ratios of their medians (target: wall
   <= 1.05) and run by run, and the size of the indexes after the first pair. On a
   shared machine the wall time follows whatever else runs; the database's CPU time
   for the run and the index sizes hardly do.

The rows the bench adds (the messages) stay for the next run; the audit rows and the
staff user it made are deleted at the end.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
STORE = "postgres://postgres@127.0.0.1:5432/smtplog_bench_report"
BENCH_USER = "bench-trace"

# One received message and one re-queued message per event of a message (not the
# refusals), ids 2n-1 and 2n for event n. Client, login and sizes as bench/report.py
# gives its events; the Message-ID as a mail program makes one (time, a number, domain).
MESSAGES_SQL = """
INSERT INTO smtplog_message (id, relay, queue_id, first_seen, sender, client_name,
    client_ip, sasl_method, sasl_username, size, nrcpt, message_id, origin_id,
    auth_counted, expired_at, removed_at)
SELECT 2 * e.id - 1 + hop, e.relay,
       CASE hop WHEN 1 THEN e.queue_id
            ELSE upper(lpad(to_hex((e.id * 40503 + 7) %% 1099511627776), 10, '0')) END,
       e.time - (3 - hop) * interval '1.5 second', e.sender,
       'pc' || (e.id %% 250) || '.cs.nthu.edu.tw', e.client_ip,
       CASE WHEN e.sasl_username <> '' THEN 'PLAIN' ELSE '' END, e.sasl_username,
       2000 + e.id %% 90000, 1,
       to_char(e.time AT TIME ZONE 'Asia/Taipei', 'YYYYMMDDHH24MISS') || '.' || e.id
           || '@' || split_part(e.sender, '@', 2),
       CASE WHEN hop = 1 THEN 2 * e.id - 1 END,
       false,
       CASE WHEN hop = 1 AND e.status = 'expired' THEN e.time END,
       CASE hop WHEN 1 THEN e.time + interval '0.2 second'
                ELSE e.time - interval '0.5 second' END
FROM smtplog_event AS e CROSS JOIN (VALUES (0), (1)) AS hops (hop)
WHERE e.status <> 'auth_blk' AND e.id BETWEEN %(first)s AND %(last)s
ORDER BY e.id, hop
"""


def say(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def store_messages(url: str) -> None:
    """Add the messages of the store's events, once (kept for later runs)."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        wanted = conn.execute(
            "SELECT 2 * count(*) FROM smtplog_event WHERE status <> 'auth_blk'"
        ).fetchone()[0]
        have = conn.execute("SELECT count(*) FROM smtplog_message").fetchone()[0]
        if have == wanted:
            say(f"messages: reusing {have:,}")
            return
        say(f"messages: adding {wanted:,} to the store (a few minutes, once)")
        started = time.perf_counter()
        conn.execute("SET maintenance_work_mem = '1GB'")
        with conn.transaction():  # all or nothing: the indexes come back whatever happens
            conn.execute("TRUNCATE smtplog_message")
            indexes = conn.execute(
                "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = "
                "'smtplog_message' AND indexname NOT IN (SELECT conname FROM pg_constraint)"
            ).fetchall()
            for name, _definition in indexes:  # built once, after the load
                conn.execute(f'DROP INDEX "{name}"')
            last = conn.execute("SELECT max(id) FROM smtplog_event").fetchone()[0]
            step = 1_000_000
            for first in range(1, last + 1, step):
                conn.execute(MESSAGES_SQL, {"first": first, "last": first + step - 1})
                say(f"  events up to {min(first + step - 1, last):,}")
            for _name, definition in indexes:
                conn.execute(definition)
            conn.execute(
                "SELECT setval(pg_get_serial_sequence('smtplog_message', 'id'), max(id)) "
                "FROM smtplog_message"
            )
        conn.execute("VACUUM ANALYZE smtplog_message")
    say(f"messages: added in {time.perf_counter() - started:.0f} s")


def missing_indexes() -> None:
    """Build any index of the models the store lacks (a load stopped half-way, say)."""
    from django.db import connection

    from smtplog.models import Event, Message

    with connection.cursor() as cursor:
        cursor.execute("SELECT indexname FROM pg_indexes WHERE schemaname = 'public'")
        present = {name for (name,) in cursor.fetchall()}
    for model in (Message, Event):
        for index in model._meta.indexes:
            if index.name not in present:
                say(f"index {index.name}: missing, building it")
                with connection.schema_editor() as editor:
                    editor.add_index(model, index)


def setup_django(url: str) -> None:
    os.environ.update(
        DATABASE_URL=url,
        DJANGO_SETTINGS_MODULE="smtplog.settings",
        DEBUG="false",  # production: no query log kept in memory
        SECRET_KEY="bench-" + "x" * 60,
        ALLOWED_HOSTS="testserver",
        LOG_LEVEL="WARNING",
    )
    import django

    django.setup()


def samples(n: int) -> dict[str, list]:
    """Values to look up, spread over the last 24 hours of the store."""
    from django.db.models import Max, Min
    from django.utils import timezone

    from smtplog.models import Event, Message

    now = timezone.now()
    day = Event.objects.filter(
        time__gte=now - dt.timedelta(hours=23),
        time__lte=now,
        day__gte=timezone.localdate(now) - dt.timedelta(days=1),
    )
    bounds = day.aggregate(first=Min("id"), last=Max("id"))
    step = (bounds["last"] - bounds["first"]) // (3 * n)
    picked = Event.objects.filter(
        id__in=range(bounds["first"], bounds["last"], step),
        status__in=("sent", "deferred", "bounced"),
        sender__startswith="u",
    ).order_by("id")[:n]
    events = list(picked.values("queue_id", "sender"))
    queue_ids = [e["queue_id"] for e in events]
    hops = Message.objects.filter(queue_id__in=queue_ids, origin__isnull=False)
    hops = {m.queue_id: m for m in hops}
    locals_ = [e["sender"].split("@")[0] for e in events]
    return {
        "queue ID": queue_ids,
        "Message-ID": [hops[q].message_id for q in queue_ids if q in hops],
        "sender prefix": [f"{local}@" for local in locals_],
        "sender prefix with domain": [f"{local}@cs." for local in locals_],
        "broad prefix": [f"{local[:3]}*" for local in locals_],
        "message page": [hops[q].origin_id for q in queue_ids if q in hops],
    }


def time_pages(n: int) -> None:
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client

    from bench.report import machine_busy_seconds
    from tracing.models import Look

    user, _ = get_user_model().objects.get_or_create(
        username=BENCH_USER, defaults={"is_staff": True}
    )
    client = Client()
    client.force_login(user)
    values = samples(n)
    # What each page must show, so that a figure never times an empty answer.
    shows = {
        "queue ID": b"kind-message",
        "Message-ID": b"kind-message",
        "sender prefix": b"kind-message",
        "sender prefix with domain": b"kind-message",
        "broad prefix": b"kind-message",
        "message page": b"step-attempt",
    }
    requests = {
        "queue ID": lambda v: ("/admin/trace/", {"queue_id": v}),
        "Message-ID": lambda v: ("/admin/trace/", {"message_id": v}),
        "sender prefix": lambda v: ("/admin/trace/", {"sender": v}),
        "sender prefix with domain": lambda v: ("/admin/trace/", {"sender": v}),
        "broad prefix": lambda v: ("/admin/trace/", {"sender": v}),
        "message page": lambda v: (f"/admin/trace/message/{v}/", {}),
    }
    targets = {
        "queue ID": "<= 50 ms",
        "Message-ID": "<= 50 ms",
        "sender prefix": "<= 200 ms",
        "sender prefix with domain": "<= 200 ms",
        "broad prefix": "none (1,111 of 30,000 senders match)",
        "message page": "<= 100 ms",
    }
    try:
        for kind, make in requests.items():
            firsts, warms, busy, own = [], [], machine_busy_seconds(), time.process_time()
            for value in values[kind]:
                for run in range(4):
                    path, params = make(value)
                    started = time.perf_counter()
                    response = client.get(path, params, secure=True)
                    seconds = time.perf_counter() - started
                    assert response.status_code == 200, (kind, value, response.status_code)
                    assert shows[kind] in response.content, (kind, value)
                    (firsts if run == 0 else warms).append(seconds)
            spent = sum(firsts) + sum(warms)
            busy, own = machine_busy_seconds() - busy, time.process_time() - own
            say(
                f"{kind:<26} {len(values[kind])} values: first run median "
                f"{statistics.median(firsts) * 1000:.1f} ms, warm median "
                f"{statistics.median(warms) * 1000:.1f} ms (max "
                f"{max(warms) * 1000:.1f}); target {targets[kind]}; machine "
                f"{busy / spent:.2f} cores busy, {max(busy - own, 0) / spent:.2f} of them "
                "not this process (the database included)"
            )
    finally:
        Look.objects.filter(user=user).delete()
        user.delete()
        connection.close()


def ingest_cost(runs: int) -> None:
    """The sample month ingested with and without the trace's indexes, in turn."""
    from bench.ingest import ingest_from_scratch, prepare_month

    out = prepare_month(REPO / "bench" / "out" / "ingest", 1_400_000)
    walls: dict[str, list[float]] = {"with": [], "without": []}
    database: dict[str, list[float]] = {"with": [], "without": []}
    schemas = [("with", None), ("without", without_trace_indexes)]
    for run in range(1, runs + 1):
        for label, prepare in schemas if run % 2 else schemas[::-1]:  # who goes first
            say(f"ingest run {run} of {runs}, {label} the trace's indexes")
            cpu = DatabaseCpu(ingest_url())
            wall, _rss, _pss = ingest_from_scratch(ingest_url(), out, prepare=prepare, watch=cpu)
            say(f"  database server CPU for the run: {cpu.seconds:.1f} s")
            walls[label].append(wall)
            database[label].append(cpu.seconds)
            if run == 1:
                index_sizes(ingest_url())
    for name, figures in (("wall", walls), ("database CPU", database)):
        for label, values in figures.items():
            each = " ".join(f"{v:.1f}" for v in values)
            say(f"{name:<13} {label:<8} {each} s; median {statistics.median(values):.1f}")
        ratio = statistics.median(figures["with"]) / statistics.median(figures["without"])
        pairs = [w / wo for w, wo in zip(figures["with"], figures["without"], strict=True)]
        say(
            f"{name:<13} ratio with/without {ratio:.3f} (medians); run by run "
            f"{' '.join(f'{p:.3f}' for p in pairs)} (median {statistics.median(pairs):.3f})"
        )
    say("target: wall ratio <= 1.05")


class DatabaseCpu:
    """CPU time of the database server's sessions on one database while a block runs.

    Sampled every 50 ms from /proc (the server runs on this machine): each session's
    last reading counts, so only its final 50 ms or less can be missed. Unlike the wall
    time, other work on the machine hardly changes it.
    """

    def __init__(self, url: str):
        self.url = url
        self.name = url.rsplit("/", 1)[1]
        self.last: dict[int, float] = {}
        self.done = threading.Event()

    def __enter__(self) -> DatabaseCpu:
        self.thread = threading.Thread(target=self.sample, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.done.set()
        self.thread.join()

    @property
    def seconds(self) -> float:
        return sum(self.last.values())

    def sample(self) -> None:
        import psycopg

        from bench.report import cpu_seconds

        with psycopg.connect(self.url.rsplit("/", 1)[0] + "/postgres", autocommit=True) as conn:
            while not self.done.wait(0.05):
                pids = conn.execute(
                    "SELECT pid FROM pg_stat_activity WHERE datname = %s", [self.name]
                ).fetchall()
                for (pid,) in pids:
                    seconds = cpu_seconds([pid])
                    if seconds:
                        self.last[pid] = max(seconds, self.last.get(pid, 0.0))


# The indexes the trace added (smtplog 0003 and 0006), and the two it gave a pattern
# operator class, with the definitions they had before.
NEW_INDEXES = (
    "message_first_hop_message_id",
    "message_requeued",
    "event_refusal_client_time",
)
REPLACED = {
    "event_sender_prefix_time": "event_sender_time",
    "event_recipient_prefix": "event_recipient",
}
BEFORE = (
    "CREATE INDEX event_sender_time ON smtplog_event (sender, time)",
    "CREATE INDEX event_recipient ON smtplog_event (recipient)",
)


def without_trace_indexes(url: str) -> None:
    """The schema as it was before the trace: its indexes dropped, the two old ones back."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        for name in (*NEW_INDEXES, *REPLACED):
            conn.execute(f'DROP INDEX "{name}"')
        for definition in BEFORE:
            conn.execute(definition)


def index_sizes(url: str) -> None:
    """What the ingested month's indexes weigh: a measure of their work that noise spares."""
    import psycopg

    with psycopg.connect(url) as conn:
        sizes = dict(
            conn.execute(
                "SELECT c.relname, pg_relation_size(c.oid) FROM pg_class c JOIN pg_namespace n "
                "ON n.oid = c.relnamespace WHERE n.nspname = 'public' AND c.relname IN "
                "('smtplog_event', 'smtplog_message') OR c.oid IN (SELECT indexrelid FROM "
                "pg_index i JOIN pg_class t ON t.oid = i.indrelid WHERE t.relname IN "
                "('smtplog_event', 'smtplog_message'))"
            ).fetchall()
        )
    mb = 2**20
    total = sum(sizes.values())
    added = sum(sizes.get(name, 0) for name in NEW_INDEXES)
    say(
        f"  events and messages, tables and indexes: {total / mb:.1f} MB; the trace's new "
        f"indexes {added / mb:.1f} MB ("
        + ", ".join(f"{name} {sizes.get(name, 0) / mb:.1f}" for name in NEW_INDEXES)
        + "); "
        + ", ".join(
            f"{name} {sizes.get(name, sizes.get(old, 0)) / mb:.1f}"
            for name, old in REPLACED.items()
        )
    )


def ingest_url() -> str:
    return os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/smtplog_bench")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=15)
    parser.add_argument("--store-url", default=os.environ.get("BENCH_STORE_URL", STORE))
    parser.add_argument("--skip-pages", action="store_true")
    parser.add_argument("--ingest-cost", type=int, default=0, metavar="N")
    args = parser.parse_args()

    if not args.skip_pages:
        from bench.report import build_store

        build_store(args.store_url, 10_000_000, rebuild=False)  # and migrated to this code
        store_messages(args.store_url)
        env = {**os.environ, "DATABASE_URL": args.store_url}
        subprocess.run(
            [sys.executable, str(REPO / "manage.py"), "migrate", "-v0"], env=env, check=True
        )
        setup_django(args.store_url)
        missing_indexes()
        time_pages(args.samples)
    if args.ingest_cost:
        ingest_cost(args.ingest_cost)
    say("load average   {:.2f} {:.2f} {:.2f} ({} cores)".format(*os.getloadavg(), os.cpu_count()))


if __name__ == "__main__":
    main()

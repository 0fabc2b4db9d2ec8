"""The nightly alert pass over one busy day, timed side by side with pflogsumm on that day's log.

    .venv/bin/python bench/alerts.py [--events 300000] [--senders 30000] [--repeat 3]

Builds one local day of at least --events delivery events in a fresh PostgreSQL database
(DATABASE_URL's server, database smtplog_bench_alerts; or BENCH_DATABASE_URL), loaded
with COPY, its daily counters made by one INSERT ... SELECT, and writes the same day as
a classic syslog Postfix log (bench/out/alerts/mail.log) as the relays write it: per
message the SASL submission, the hand-off to the content filter and the re-injected
copy, one smtp status line per recipient, about 6 lines per event (the project's
smtplog.sample month has 6.8); rejects; bounces from the null sender in the database. Senders follow
a long-tailed distribution: about 130 reach the Sum threshold, a few compromised
accounts the Bounced one.

Then it times the alert pass exactly as the nightly task runs it for that day (select
from counters, insert the Alert rows, claim, read each sender's events in aggregate,
render and send each bilingual mail to Django's in-memory backend), best of --repeat
runs with the Alert rows deleted in between, and pflogsumm over the log file.
Target (issue 5): alert pass / pflogsumm <= 0.2.
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import itertools
import os
import random
import subprocess
import sys
import time
import zoneinfo
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

TZ = zoneinfo.ZoneInfo("Asia/Taipei")
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
CAMPUS = (
    "nthu.edu.tw",
    "cs.nthu.edu.tw",
    "ee.nthu.edu.tw",
    "mx.nthu.edu.tw",
    "m110.nthu.edu.tw",
    "gapp.nthu.edu.tw",
    "phys.nthu.edu.tw",
    "life.nthu.edu.tw",
)
REMOTE = (
    "gmail.com",
    "yahoo.com.tw",
    "outlook.com",
    "hotmail.com",
    "msa.hinet.net",
    "ntu.edu.tw",
    "nycu.edu.tw",
    "icloud.com",
    "qq.com",
    "example.org",
)
RELAYS = ("smtp1", "smtp2", "smtp3")
COLUMNS = (
    "time",
    "day",
    "sender",
    "status",
    "relay",
    "queue_id",
    "client_ip",
    "sasl_username",
    "recipient",
    "next_hop",
    "dsn",
    "delay",
    "response",
)


def say(text: str) -> None:
    print(text, flush=True)


class Day:
    """One synthetic day: event rows for COPY and log lines for pflogsumm, from one stream."""

    def __init__(self, day: dt.date, senders: int, seed: int):
        self.day = day
        self.rng = random.Random(seed)
        self.senders = [self.address(n) for n in range(senders)]
        # Long tail: weight 1/(rank + 50) puts ~0.3% of the day on the busiest sender.
        self.cumulative = list(itertools.accumulate(1 / (rank + 50) for rank in range(senders)))
        self.compromised = set(self.rng.sample(self.senders[1000:], 5))
        self.rows = io.StringIO()
        self.lines: list[str] = []
        self.events = 0
        self.queue = 0x1855000

    def address(self, n: int) -> str:
        domain = CAMPUS[n % len(CAMPUS)] if n % 20 else REMOTE[n % len(REMOTE)]
        return f"user{n:05d}@{domain}"

    def stamp(self, moment: dt.datetime) -> str:
        return f"{MONTHS[moment.month - 1]} {moment.day:2d} {moment:%H:%M:%S}"

    def row(
        self,
        moment,
        status,
        sender,
        relay,
        qid,
        ip="",
        login="",
        rcpt="",
        hop="",
        dsn="",
        delay="",
        response="",
    ) -> None:
        values = (
            moment.isoformat(),
            self.day.isoformat(),
            sender,
            status,
            relay,
            qid,
            ip or "\\N",
            login,
            rcpt,
            hop,
            dsn,
            delay or "\\N",
            response,
        )
        self.rows.write("\t".join(values) + "\n")
        self.events += 1

    def message(self, moment: dt.datetime) -> None:
        """One submitted message as the relays log it, and its events.

        Submission, the hand-off to the content filter on 127.0.0.1:10024 and the
        re-injected copy under a new queue ID, then one status line per recipient.
        """
        rng = self.rng
        sender = rng.choices(self.senders, cum_weights=self.cumulative)[0]
        relay, ip = rng.choice(RELAYS), f"140.114.{rng.randrange(1, 255)}.{rng.randrange(1, 255)}"
        qid, filtered = self.queue_id(), self.queue_id()
        login, pid = sender.split("@")[0], rng.randrange(1000, 60000)
        recipients = [
            f"r{rng.randrange(10**6)}@{rng.choice(REMOTE)}"
            for _ in range(rng.choice((1, 1, 1, 2, 3)))
        ]
        size = rng.randrange(900, 90000)
        head = f"{self.stamp(moment)} {relay} postfix"
        self.lines += [
            f"{head}/smtpd[{pid}]: connect from unknown[{ip}]",
            f"{head}/smtpd[{pid}]: Anonymous TLS connection established from unknown[{ip}]: "
            "TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits)",
            f"{head}/smtpd[{pid}]: {qid}: client=unknown[{ip}], sasl_method=PLAIN, "
            f"sasl_username={login}",
            f"{head}/cleanup[{pid + 1}]: {qid}: message-id=<{qid}.{pid}@{relay}>",
            f"{head}/qmgr[999]: {qid}: from=<{sender}>, size={size}, "
            f"nrcpt={len(recipients)} (queue active)",
            f"{head}/smtpd[{pid}]: disconnect from unknown[{ip}] ehlo=2 starttls=1 auth=1 "
            "mail=1 rcpt=1 data=1 quit=1 commands=8",
            f"{head}/smtpd[{pid + 3}]: connect from localhost[127.0.0.1]",
            f"{head}/smtpd[{pid + 3}]: {filtered}: client=localhost[127.0.0.1]",
            f"{head}/cleanup[{pid + 1}]: {filtered}: message-id=<{qid}.{pid}@{relay}>",
            f"{head}/qmgr[999]: {filtered}: from=<{sender}>, size={size + 700}, "
            f"nrcpt={len(recipients)} (queue active)",
            f"{head}/smtpd[{pid + 3}]: disconnect from localhost[127.0.0.1] ehlo=1 mail=1 "
            "rcpt=1 data=1 quit=1 commands=5",
            f"{self.stamp(moment)} {relay} amavis[{pid + 4}]: ({pid + 4}-01) Passed CLEAN "
            f"{{RelayedOutbound}}, ORIGINATING LOCAL [{ip}] <{sender}> -> <{recipients[0]}>, "
            f"Queue-ID: {qid}, queued_as: {filtered}, Hits: -1.0, 842 ms",
        ]
        self.lines += [
            f"{head}/smtp[{pid + 5}]: {qid}: to=<{rcpt}>, relay=127.0.0.1[127.0.0.1]:10024, "
            "delay=0.9, delays=0.1/0/0/0.8, dsn=2.0.0, status=sent (250 2.0.0 from "
            f"MTA(smtp:[127.0.0.1]:10025): 250 2.0.0 Ok: queued as {filtered})"
            for rcpt in recipients
        ]
        self.lines.append(f"{head}/qmgr[999]: {qid}: removed")
        self.row(moment, "auth_rcv", sender, relay, qid, ip, login)
        bounce_rate = 0.6 if sender in self.compromised else 0.02
        for rcpt in recipients:
            domain = rcpt.split("@")[1]
            hop = f"mx.{domain}[203.0.113.{rng.randrange(1, 255)}]:25"
            roll = rng.random()
            if roll < bounce_rate:
                status, dsn, reply = (
                    "bounced",
                    "5.1.1",
                    (
                        f"host mx.{domain} said: 550 5.1.1 <{rcpt}>: Recipient address rejected: "
                        "User unknown (in reply to RCPT TO command)"
                    ),
                )
            elif roll < bounce_rate + 0.05:
                status, dsn, reply = (
                    "deferred",
                    "4.2.2",
                    f"host mx.{domain} said: 452 4.2.2 Mailbox full (in reply to RCPT TO command)",
                )
            else:
                status, dsn, reply = "sent", "2.0.0", f"250 2.0.0 Ok: queued as {qid}"
            delay = f"{rng.random() * 3:.2f}"
            self.lines.append(
                f"{head}/smtp[{pid + 2}]: {filtered}: to=<{rcpt}>, relay={hop}, delay={delay}, "
                f"delays=0.1/0/0.4/0.3, dsn={dsn}, status={status} ({reply})"
            )
            self.row(
                moment, status, sender, relay, filtered, ip, login, rcpt, hop, dsn, delay, reply
            )
            if status == "bounced":  # the relay's own non-delivery notice: nobody's
                self.row(
                    moment,
                    "sent",
                    "<>",
                    relay,
                    filtered + "B",
                    rcpt=sender,
                    dsn="2.0.0",
                    response="250 2.0.0 Ok",
                )
        self.lines.append(f"{head}/qmgr[999]: {filtered}: removed")

    def queue_id(self) -> str:
        self.queue += 1
        return f"{self.queue:X}{self.rng.randrange(16**4):04X}"

    def reject(self, moment: dt.datetime) -> None:
        sender = self.rng.choices(self.senders, cum_weights=self.cumulative)[0]
        relay, ip = self.rng.choice(RELAYS), f"198.51.100.{self.rng.randrange(1, 255)}"
        reply = "554 5.7.1 <x@example.org>: Relay access denied"
        self.lines.append(
            f"{self.stamp(moment)} {relay} postfix/smtpd[777]: NOQUEUE: reject: RCPT from "
            f"unknown[{ip}]: {reply}; from=<{sender}> to=<x@example.org> proto=ESMTP "
            "helo=<spam>"
        )
        self.row(moment, "auth_blk", sender, relay, "", ip, response=reply)

    def generate(self, events: int) -> None:
        start = dt.datetime.combine(self.day, dt.time(0), tzinfo=TZ)
        estimate = int(events / 2.9) + 1000  # messages: ~2.9 events each
        for n in range(estimate * 2):
            moment = start + dt.timedelta(seconds=86399 * n / (estimate * 1.05))
            if moment.date() != self.day:
                moment = start + dt.timedelta(seconds=86399)
            self.message(moment)
            if n % 50 == 0:
                self.reject(moment)
            if self.events >= events:
                break


def prepare(args) -> tuple[dt.date, Path, int]:
    import psycopg

    base, name = args.database_url.rsplit("/", 1)
    with psycopg.connect(base + "/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')

    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)

    from django.db import connection
    from django.utils import timezone

    day = timezone.localdate() - dt.timedelta(days=1)
    started = time.perf_counter()
    synthetic = Day(day, args.senders, seed=5)
    synthetic.generate(args.events)
    log = Path(args.dir) / "mail.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text("\n".join(synthetic.lines) + "\n")
    say(
        f"generated {synthetic.events:,} events, {len(synthetic.lines):,} log lines "
        f"({log.stat().st_size / 2**20:.0f} MiB) in {time.perf_counter() - started:.1f} s"
    )

    started = time.perf_counter()
    connection.ensure_connection()
    with (
        connection.connection.cursor() as raw,
        raw.copy(  # psycopg 3 COPY, from memory
            f"COPY smtplog_event ({', '.join(COLUMNS)}) FROM STDIN"
        ) as copy,
    ):
        copy.write(synthetic.rows.getvalue())
    with connection.cursor() as cursor:
        counts = ", ".join(
            f"count(*) FILTER (WHERE status = '{c}')"
            for c in ("auth_blk", "auth_rcv", "bounced", "deferred", "expired", "sent")
        )
        cursor.execute(
            "INSERT INTO smtplog_dailycounter (sender, day, auth_blk, auth_rcv, bounced, "
            f"deferred, expired, sent) SELECT sender, day, {counts} FROM smtplog_event "
            "WHERE sender NOT IN ('', '<>') GROUP BY sender, day"
        )
        cursor.execute("ANALYZE")
    say(f"loaded into PostgreSQL in {time.perf_counter() - started:.1f} s")
    return day, log, synthetic.events


def time_alert_pass(day: dt.date, repeat: int) -> tuple[float, int]:
    from django.core import mail

    from alerts import alerting
    from alerts.models import Alert

    best, sent = float("inf"), 0
    for _ in range(repeat):
        Alert.objects.all().delete()
        mail.outbox = []
        started = time.perf_counter()
        outcomes = alerting.run_alerts([day])
        best = min(best, time.perf_counter() - started)
        sent = outcomes["sent"]
    return best, sent


def time_pflogsumm(log: Path, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        with log.open("rb") as lines:
            subprocess.run(["pflogsumm"], stdin=lines, stdout=subprocess.DEVNULL, check=True)
        best = min(best, time.perf_counter() - started)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=300_000)
    parser.add_argument("--senders", type=int, default=30_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--dir", default=str(REPO / "bench" / "out" / "alerts"))
    parser.add_argument(
        "--database-url",
        default=os.environ.get(
            "BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/smtplog_bench_alerts"
        ),
    )
    args = parser.parse_args()
    os.environ.update(
        {
            "DJANGO_SETTINGS_MODULE": "smtplog.settings",
            "DATABASE_URL": args.database_url,
            # The mails are rendered and "sent" for real, into memory: the bench measures us,
            # not a mail server.
            "EMAIL_BACKEND": "django.core.mail.backends.locmem.EmailBackend",
        }
    )
    os.environ.pop("CELERY_BROKER_URL", None)
    os.environ["PATH"] += os.pathsep + "/usr/sbin"  # where Debian puts pflogsumm

    day, log, events = prepare(args)
    ours, sent = time_alert_pass(day, args.repeat)
    theirs = time_pflogsumm(log, args.repeat)
    say(f"day                      {day} ({events:,} events)")
    say(f"alert pass               {ours:.2f} s  ({sent} alerts sent, best of {args.repeat})")
    say(f"pflogsumm on the log     {theirs:.2f} s  (best of {args.repeat})")
    say(f"ratio alerts/pflogsumm   {ours / theirs:.3f}  (target <= 0.2)")


if __name__ == "__main__":
    main()

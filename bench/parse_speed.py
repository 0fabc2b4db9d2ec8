"""How fast LineParser.parse goes on realistic mixes of real Postfix lines.

    .venv/bin/python bench/parse_speed.py [--lines 200000] [--corpus DIR] [--repeat 3]

Real lines, re-stamped with increasing times and given fresh queue IDs, fed as bytes
(what the ingester reads):

* relay:   an outgoing relay's traffic built from the real lines below (LightMeter's
           1_bounce_simple.log and its neighbours): SASL submissions through a content
           filter, deliveries, deferrals, bounces, with connect/TLS/anvil/dovecot noise;
* corpus:  every full syslog line of the shared corpus (../shared/corpus beside the
           repository) in turn, classic timestamps;
* rfc3339: the same with rsyslog's RFC 3339 timestamps;
* inbound: the corpus with 20 times its postscreen/dnsblog lines, as on an MX.

Rates are lines per second of CPU time (best of --repeat runs), so that other work on a
shared machine counts less, and of wall-clock time. Each mix also runs line_host (the
host field alone, to split a central log by relay) over the same lines, to compare.
"""

from __future__ import annotations

import argparse
import gc
import random
import re
import sys
import time
import zoneinfo
from datetime import datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from smtplog.postfix.parser import LineParser, line_host  # noqa: E402

CORPUS = REPO.parent / "shared" / "corpus"
TZ = zoneinfo.ZoneInfo("Asia/Taipei")
START = datetime(2026, 3, 1, tzinfo=TZ)

# One classic, RFC 3339 or year-prefixed timestamp, then host and program.
HEADER = re.compile(
    r"^(?:[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d|\d{4}-\d\d-\d\dT\S+|\d{4} [A-Z][a-z]{2} \d\d \S+)"
    r" (?P<rest>\S+ \S+\[\d+\]: .*)$"
)
QID = re.compile(r"\b([0-9A-F]{8,12}(?:XXXX)?|[0-9B-DF-HJ-NP-TV-Zb-df-hj-np-tv-z]{12,17})\b")

# The life of one submitted message on an outgoing relay (LM-ind 1_bounce_simple.log,
# 5_zimbra_amavisd.log, 18_expired.log shapes); {Q} the queue ID, {R} the re-queued one.
MESSAGE = [
    "mail postfix/submission/smtpd[9708]: connect from some.domain.name[1.2.3.4]",
    "mail postfix/submission/smtpd[9708]: Anonymous TLS connection established from "
    "some.domain.name[1.2.3.4]: TLSv1.2 with cipher ECDHE-RSA-AES256-GCM-SHA384 (256/256 bits)",
    "mail postfix/submission/smtpd[9708]: {Q}: client=some.domain.name[1.2.3.4], "
    "sasl_method=PLAIN, sasl_username=user@sender.com",
    "mail postfix/sender-cleanup/cleanup[9709]: {Q}: "
    "message-id=<ca10035e-2951-bfd5-ec7e-1a5773fce1cd@mail.sender.com>",
    "mail opendkim[235]: {Q}: DKIM-Signature field added (s=mail, d=mail.sender.com)",
    "mail postfix/qmgr[1005]: {Q}: from=<user@sender.com>, size=391, nrcpt=2 (queue active)",
    "mail postfix/submission/smtpd[9708]: disconnect from some.domain.name[1.2.3.4] ehlo=2 "
    "starttls=1 auth=1 mail=1 rcpt=1 data=1 quit=1 commands=8",
    "mail postfix/smtpd[9715]: connect from localhost[127.0.0.1]",
    "mail postfix/smtpd[9715]: {R}: client=localhost[127.0.0.1]",
    "mail postfix/cleanup[9716]: {R}: "
    "message-id=<ca10035e-2951-bfd5-ec7e-1a5773fce1cd@mail.sender.com>",
    "mail postfix/qmgr[1005]: {R}: from=<user@sender.com>, size=1111, nrcpt=2 (queue active)",
    "mail postfix/smtpd[9715]: disconnect from localhost[127.0.0.1] ehlo=1 mail=1 rcpt=1 data=1 "
    "quit=1 commands=5",
    "mail amavis[2279]: (02279-04) Passed CLEAN {{RelayedOpenRelay}}, [1.2.3.4]:6101 [1.2.3.4] "
    "<user@sender.com> -> <invalid.email@example.com>, Queue-ID: {Q}, mail_id: 6aLEkMwQa8H2, "
    "Hits: -, size: 888, queued_as: {R}, 80 ms",
    "mail postfix/smtp[9710]: {Q}: to=<invalid.email@example.com>, "
    "relay=127.0.0.1[127.0.0.1]:10024, delay=0.23, delays=0.15/0/0/0.08, dsn=2.0.0, "
    "status=sent (250 2.0.0 from MTA(smtp:[127.0.0.1]:10025): 250 2.0.0 Ok: queued as {R})",
    "mail postfix/qmgr[1005]: {Q}: removed",
    "mail postfix/smtp[9890]: Trusted TLS connection established to "
    "gmail-smtp-in.l.google.com[74.125.24.27]:25: TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 "
    "(256/256 bits) key-exchange X25519 server-signature ECDSA (P-256) server-digest SHA256",
    "mail postfix/smtp[9890]: {R}: to=<recipient@recipient.example.com>, "
    "relay=gmail-smtp-in.l.google.com[74.125.24.27]:25, delay=5.2, delays=0.1/0.06/1.7/3.4, "
    "dsn=2.0.0, status=sent (250 2.0.0 OK  1608161352 c34si2363086pgm.445 - gsmtp)",
    "mail postfix/smtp[9891]: {R}: to=<h-664d01@h-695da2287.com>, "
    "relay=ALT2.ASPMX.L.GOOGLE.com[3.155.237.60]:25, delay=2, delays=0.18/0/1.6/0.19, "
    "dsn=4.1.1, status=deferred (host ALT2.ASPMX.L.GOOGLE.com[3.155.237.60] said: 452 4.1.1 "
    "<h-664d01@h-695da2287.com> user is over quota, please try again later "
    "(in reply to RCPT TO command))",
    "mail postfix/qmgr[1005]: {R}: removed",
]
BOUNCE = [
    "mail postfix/smtp[9892]: {Q}: to=<invalid.email@example.com>, "
    "relay=mx.example.com[11.22.33.44]:25, delay=1.9, delays=0/0/1.5/0.37, dsn=5.1.1, "
    "status=bounced (host mx.example.com[11.22.33.44] said: 550 5.1.1 "
    "<invalid.email@example.com> User unknown (in reply to RCPT TO command))",
    "mail postfix/cleanup[9716]: {R}: message-id=<20200603104059.{R}@mail.sender.com>",
    "mail postfix/bounce[9719]: {Q}: sender non-delivery notification: {R}",
    "mail postfix/qmgr[1005]: {R}: from=<>, size=3147, nrcpt=1 (queue active)",
]
NOISE = [
    "mail postfix/anvil[18492]: statistics: max connection rate 2/60s for "
    "(submission:68.183.218.8) at Dec  7 13:28:01",
    "mail postfix/smtpd[3564]: warning: unknown[222.162.115.97]: SASL LOGIN authentication "
    "failed: UGFzc3dvcmQ6",
    "mail postfix/smtpd[3564]: lost connection after AUTH from unknown[222.162.115.97]",
    "mail postfix/smtp[16152]: connect to michaela.com[176.74.176.167]:25: Connection refused",
    "mail postfix/smtpd[20127]: NOQUEUE: reject: RCPT from h-be8106e24226d8ee7[199.229.127.90]: "
    "550 5.1.1 <h-9642@h-ffeb17e38996c.com>: Recipient address rejected: User unknown in "
    "virtual mailbox table; from=<h-f16@h-be8106e24226d8ee7.com> "
    "to=<h-9642@h-ffeb17e38996c.com> proto=ESMTP helo=<h-be8106e24226d8ee7>",
    "mail dovecot: imap-login: Login: user=<h-304@h-ffeb17e38996c.com>, method=LOGIN, "
    "rip=224.165.23.115, lip=170.45.1.1, mpid=21711, TLS, session=<UXdX/9u52oxbQgr8>",
]


def queue_ids(rng: random.Random):
    while True:
        yield f"{rng.getrandbits(44):011X}"


def classic(t: datetime) -> str:
    return f"{t:%b} {t.day:2d} {t:%H:%M:%S}"


def relay_mix(n: int, rng: random.Random) -> list[bytes]:
    ids = queue_ids(rng)
    lines: list[bytes] = []
    t = START
    while len(lines) < n:
        q, r = next(ids), next(ids)
        block = MESSAGE + (BOUNCE if rng.random() < 0.1 else []) + rng.sample(NOISE, 2)
        for template in block:
            t += timedelta(milliseconds=rng.randrange(0, 900))
            lines.append(f"{classic(t)} {template.format(Q=q, R=r)}".encode())
    return lines[:n]


def corpus_lines(corpus: Path) -> list[str]:
    """The corpus's full syslog lines, without their timestamps."""
    rests = []
    for path in sorted(corpus.glob("*.log")):
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            m = HEADER.match(line)
            if m:
                rests.append(m.group("rest"))
    return rests


def corpus_mix(n: int, rests: list[str], rng: random.Random, rfc3339: bool) -> list[bytes]:
    ids = queue_ids(rng)
    templates = [QID.split(rest) for rest in rests]  # odd items: the queue IDs
    lines: list[bytes] = []
    t = START
    fresh: dict[str, str] = {}
    while len(lines) < n:
        for parts in templates:
            t += timedelta(milliseconds=rng.randrange(0, 600))
            if len(fresh) > 500:
                fresh.clear()
            rest = "".join(
                part if i % 2 == 0 else fresh.setdefault(part, next(ids))
                for i, part in enumerate(parts)
            )
            stamp = t.isoformat(timespec="microseconds") if rfc3339 else classic(t)
            lines.append(f"{stamp} {rest}".encode())
    return lines[:n]


def inbound_mix(n: int, rests: list[str], rng: random.Random) -> list[bytes]:
    screen = [r for r in rests if "/postscreen[" in r or "/dnsblog[" in r]
    return corpus_mix(n, rests + screen * 20, rng, rfc3339=True)


def measure(lines: list[bytes], repeat: int) -> tuple[float, float, int, LineParser]:
    cpu = wall = float("inf")
    parser = LineParser(TZ, reference=START + timedelta(days=40))
    records = 0
    for _ in range(repeat):
        parser = LineParser(TZ, reference=START + timedelta(days=40))
        parse = parser.parse
        gc.collect()
        started, started_wall = time.process_time(), time.perf_counter()
        records = sum(1 for line in lines if parse(line) is not None)
        cpu = min(cpu, time.process_time() - started)
        wall = min(wall, time.perf_counter() - started_wall)
    return len(lines) / cpu, len(lines) / wall, records, parser


def measure_host(lines: list[bytes], repeat: int) -> float:
    """line_host's rate in lines per second of CPU time (best of `repeat`)."""
    cpu = float("inf")
    for _ in range(repeat):
        gc.collect()
        started = time.process_time()
        for line in lines:
            line_host(line)
        cpu = min(cpu, time.process_time() - started)
    return len(lines) / cpu


def main() -> None:
    options = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    options.add_argument("--lines", type=int, default=200_000)
    options.add_argument("--repeat", type=int, default=3)
    options.add_argument("--corpus", type=Path, default=CORPUS)
    args = options.parse_args()
    rng = random.Random(25)
    mixes = {"relay": relay_mix(args.lines, rng)}
    if args.corpus.is_dir():
        rests = corpus_lines(args.corpus)
        mixes["corpus"] = corpus_mix(args.lines, rests, rng, rfc3339=False)
        mixes["rfc3339"] = corpus_mix(args.lines, rests, rng, rfc3339=True)
        mixes["inbound"] = inbound_mix(args.lines, rests, rng)
    else:
        print(f"no corpus at {args.corpus}: relay mix only", file=sys.stderr)
    for name, lines in mixes.items():
        cpu, wall, records, parser = measure(lines, args.repeat)
        skipped = ", ".join(f"{k} {v}" for k, v in parser.stats.most_common())
        print(
            f"{name:8} {len(lines):>7} lines {cpu:>9,.0f} lines/s CPU {wall:>9,.0f} wall  "
            f"{records / len(lines):.0%} records; skipped: {skipped}"
        )
        host = measure_host(lines, args.repeat)
        print(f"{'':8} line_host {host:>9,.0f} lines/s CPU: {host / cpu:.1f} times parse's rate")


if __name__ == "__main__":
    main()

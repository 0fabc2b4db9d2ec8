"""A realistic month of campus relay-cluster Postfix logs, and the exact counts they must give.

`generate()` simulates the university's outgoing relays (``smtp1``, ``smtp2``, ...) and writes, per
relay, Debian-style daily rotated syslog files (``mail.log``, ``mail.log.1``, ``mail.log.2.gz`` ...,
rotated by cron.daily at about 06:25 local time) plus ``expected.json``: what every column of the
report (docs/counting-rules.md) must show for each sender and local day, and what pflogsumm must
report per relay and day. Every line follows the grammar of real Postfix, amavis, opendkim, dovecot
and postscreen lines (docs/postfix-lines.md), so our parser and pflogsumm both read them.

The simulation: SASL submissions (addresses and bare logins), webmail, campus servers relaying
without SASL, forwarded off-campus senders; every message crosses an amavis content filter
(QID1 -> ``queued as`` QID2 on 127.0.0.1:10024); several recipients per message, a few bulk ones;
sent, bounced, and deferred recipients retried on Postfix's back-off until sent, bounced or expired
after five days (with non-delivery notifications from the null sender); rejects, SASL failures
(address, bare login and username-less Cyrus forms), queue-ID reuse, a compromised account, a
content-filter outage, and noise from other daemons.

Counting rules (the ingestion engine implements the same; each event on the local day of the line
that evidences it, for the envelope sender in lower case, never for the null sender):

* auth_rcv: each ``client=..., sasl_username=`` line of a submission (not the client=localhost
  re-injection), for the message's ``from=``.
* auth_blk: each ``reject:`` line (NOQUEUE, queue ID, postscreen) with a non-empty ``from=``; each
  SASL failure whose ``sasl_username`` is an address (that address) or a bare login (the sender that
  login authenticates as; every bare login used also authenticates successfully somewhere in the
  data); failures without a username count for nobody.
* sent: each ``status=sent`` line except the hand-off to the content filter (relay
  127.0.0.1[127.0.0.1]:10024, "queued as NEWID"); bounced, deferred: each such line, any hop,
  postfix/error included; expired: each qmgr ``status=expired, returned to sender`` line.

The simulation streams: it works through the month an hour at a time, keeps only the lines not yet
written and the messages still queued, and writes each hour's lines (sorted) as it goes.
No Django here: plain Python, usable from tests, the management command and benchmarks.
"""

from __future__ import annotations

import bisect
import gzip
import heapq
import itertools
import json
import operator
import os
import random
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import TypeVar
from zoneinfo import ZoneInfo

T = TypeVar("T")
COLUMNS = ("auth_blk", "auth_rcv", "bounced", "deferred", "expired", "sent")
AUTH_BLK, AUTH_RCV, BOUNCED, DEFERRED, EXPIRED, SENT = range(6)
PFLOGSUMM = ("received", "delivered", "deferrals", "bounced", "rejected")
RECEIVED, DELIVERED, DEFERRALS, PF_BOUNCED, REJECTED = range(5)
FORMATS = ("classic", "rfc3339")
MAX_RELAYS = 9

LIFETIME = 5 * 86400  # maximal_queue_lifetime
ROTATION = time(6, 25)  # Debian's cron.daily
LETTERS = "abcdefghijklmnopqrstuvwxyz"
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
SHORT_ID_INODES = ((0x1855000, 0x1857FFF), (0x3D000, 0x3FFFF), (0x2A4100, 0x2A7FFF))
LONG_ID_ALPHABET = "0123456789BCDFGHJKLMNPQRSTVWXYZbcdfghjklmnpqrstvwxyz"
FILTER_RELAY = "127.0.0.1[127.0.0.1]:10024"
_first = operator.itemgetter(0)  # sort key of (time, ...) tuples
RCPT_COUNTS, RCPT_CUMULATIVE = (1, 2, 3, 4, 5), (60, 80, 90, 96, 100)  # nrcpt of most messages
WEBMAIL = ("webmail.nthu.edu.tw", "140.114.64.10")
HOUR_WEIGHTS = (
    0.25,
    0.15,
    0.1,
    0.1,
    0.1,
    0.2,
    0.4,
    0.9,
    1.6,
    2.3,
    2.4,
    2.2,
    1.3,
    1.8,
    2.3,
    2.3,
    2.1,
    1.6,
    1.0,
    0.9,
    1.0,
    1.0,
    0.8,
    0.5,
)

DEPTS = (
    "cs",
    "ee",
    "phys",
    "chem",
    "math",
    "me",
    "mse",
    "ls",
    "hss",
    "ess",
    "cc",
    "lib",
    "stat",
    "ieem",
    "che",
    "nes",
    "ipt",
    "oga",
    "adm",
    "ccxp",
)
SURNAMES = (
    "chen",
    "lin",
    "huang",
    "chang",
    "lee",
    "wang",
    "wu",
    "liu",
    "tsai",
    "yang",
    "hsu",
    "cheng",
    "hsieh",
    "kuo",
    "lai",
    "hung",
    "tseng",
    "chiu",
    "lu",
    "chou",
    "su",
    "yeh",
)
GIVEN = (
    "alice",
    "bob",
    "carol",
    "david",
    "emily",
    "frank",
    "grace",
    "henry",
    "ivy",
    "jack",
    "kevin",
    "linda",
    "mike",
    "nina",
    "oscar",
    "peggy",
    "ray",
    "sandy",
    "tom",
    "vicky",
    "wendy",
    "ming",
    "wei",
    "hao",
    "ting",
    "yu",
    "jun",
    "chia",
    "hsin",
    "yun",
)
SERVICES = ("noreply", "cron", "monitor", "nas", "gitlab", "moodle", "printer", "backup", "wiki")

# address, kind, SASL username (None: relayed without SASL), client name, client IP, sessions
# a day (whatever the cluster's volume; scaled down only for tiny samples).
# Kinds: sasl (submission port), webmail, server (campus host in mynetworks), forward (a campus
# mailbox host forwarding mail of an off-campus sender). Their bare logins all succeed on day 1.
FIXED_SENDERS = (
    ("alice@cs.nthu.edu.tw", "sasl", "alice", "unknown", "140.114.89.41", 6),
    ("noreply@nthu.edu.tw", "server", None, "ccxp.nthu.edu.tw", "140.114.64.20", 25),
    (
        "lab-server@phys.nthu.edu.tw",
        "server",
        None,
        "lab-server.phys.nthu.edu.tw",
        "140.114.81.22",
        8,
    ),
    (
        "bob.chen@ee.nthu.edu.tw",
        "sasl",
        "bob.chen@ee.nthu.edu.tw",
        "pc-bob.ee.nthu.edu.tw",
        "140.114.24.133",
        4,
    ),
    ("s110062001@m110.nthu.edu.tw", "webmail", "s110062001", *WEBMAIL, 3),
    ("wlin@math.nthu.edu.tw", "sasl", "wlin@math.nthu.edu.tw", "unknown", "140.114.31.77", 3),
    ("ta-ds@cs.nthu.edu.tw", "sasl", "ta-ds", "ta-server.cs.nthu.edu.tw", "140.114.89.200", 2),
    ("registrar@my.nthu.edu.tw", "webmail", "registrar@my.nthu.edu.tw", *WEBMAIL, 3),
    ("library@lib.nthu.edu.tw", "server", None, "mail.lib.nthu.edu.tw", "140.114.72.5", 6),
    ("yuting.huang@yahoo.com.tw", "forward", None, "mail.cs.nthu.edu.tw", "140.114.89.60", 2),
    ("chenwei1988@gmail.com", "forward", None, "mail.ee.nthu.edu.tw", "140.114.24.10", 1.5),
    ("noreply@conference-tw.org", "forward", None, "mail.phys.nthu.edu.tw", "140.114.81.10", 1),
)
MIXED_CASE = {"wlin@math.nthu.edu.tw": "WLin@math.nthu.edu.tw"}

# name, MX host, MX addresses, reply style, weight, mode (ok, dead, typo)
DOMAINS = (
    (
        "gmail.com",
        "gmail-smtp-in.l.google.com",
        ("142.250.157.26", "142.250.157.27", "74.125.204.26"),
        "gmail",
        30,
        "ok",
    ),
    ("gapp.nthu.edu.tw", "aspmx.l.google.com", ("142.251.8.26", "142.251.8.27"), "gmail", 6, "ok"),
    ("yahoo.com.tw", "mta7.am0.yahoodns.net", ("67.195.204.72", "98.136.96.75"), "yahoo", 6, "ok"),
    ("yahoo.com", "mta6.am0.yahoodns.net", ("67.195.204.79", "98.136.96.91"), "yahoo", 2, "ok"),
    (
        "outlook.com",
        "outlook-com.olc.protection.outlook.com",
        ("52.101.42.6", "52.101.11.18"),
        "outlook",
        4,
        "ok",
    ),
    (
        "hotmail.com",
        "hotmail-com.olc.protection.outlook.com",
        ("52.101.68.9", "52.101.73.2"),
        "outlook",
        4,
        "ok",
    ),
    ("ntu.edu.tw", "mx.ntu.edu.tw", ("140.112.2.36", "140.112.2.37"), "postfix", 3, "ok"),
    ("nycu.edu.tw", "mx1.nycu.edu.tw", ("140.113.6.9",), "postfix", 2, "ok"),
    ("ncku.edu.tw", "mail.ncku.edu.tw", ("140.116.2.40",), "exim", 1.5, "ok"),
    ("itri.org.tw", "mx.itri.org.tw", ("203.66.86.5",), "postfix", 1, "ok"),
    ("qq.com", "mx3.qq.com", ("183.47.101.192",), "qq", 1, "ok"),
    ("naver.com", "mx1.naver.com", ("125.209.238.100",), "generic", 0.5, "ok"),
    ("kyoto-u.ac.jp", "mx.kyoto-u.ac.jp", ("133.3.5.20",), "exim", 0.5, "ok"),
    ("oldlab-mail.com.tw", "mail.oldlab-mail.com.tw", ("203.69.112.45",), "postfix", 0.08, "dead"),
    ("ktv-travel.com.tw", "mx.ktv-travel.com.tw", ("61.219.36.7",), "generic", 0.04, "dead"),
    ("gmial.com", "", (), "none", 0.15, "typo"),
    ("yaho.com.tw", "", (), "none", 0.05, "typo"),
)
CAMPUS_WEIGHT = 22  # spread over the departments' mailbox hosts
TLS_TO = {
    "gmail": "TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits) key-exchange X25519 "
    "server-signature ECDSA (P-256) server-digest SHA256",
    "outlook": "TLSv1.2 with cipher ECDHE-RSA-AES256-GCM-SHA384 (256/256 bits)",
    "yahoo": "TLSv1.3 with cipher TLS_AES_128_GCM_SHA256 (128/128 bits) key-exchange X25519 "
    "server-signature RSA-PSS (2048 bits) server-digest SHA256",
}
TLS_FROM = (
    "TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits) key-exchange X25519 "
    "server-signature RSA-PSS (2048 bits) server-digest SHA256"
)
ATTACK_NETS = (
    "185.220.101",
    "45.144.212",
    "141.98.10",
    "193.32.162",
    "80.94.95",
    "222.162.115",
    "103.151.140",
    "5.188.206",
)
SPAM_FROM = (
    "sales@promo-deals.top",
    "info@bestprice-mail.xyz",
    "support@secure-verify.info",
    "newsletter@cheap-meds.ru",
    "admin@invoice-docs.click",
)
FAKE_ACCOUNTS = (
    "admin@nthu.edu.tw",
    "test@cs.nthu.edu.tw",
    "info@nthu.edu.tw",
    "webmaster@ee.nthu.edu.tw",
    "postmaster@nthu.edu.tw",
)


@dataclass
class Expected:
    """What the generated logs must produce: per sender and day, per relay and day (pflogsumm)."""

    timezone: str
    first_day: date
    last_day: date
    counts: dict[str, dict[str, dict[str, int]]]
    lines: int
    relays: list[dict[str, str]]
    pflogsumm: dict[str, dict[str, dict[str, int]]]
    files: list[str] = field(default_factory=list)
    seed: int = 1
    timestamp_format: str = "classic"

    def to_json(self) -> dict:
        return {
            "timezone": self.timezone,
            "first_day": self.first_day.isoformat(),
            "last_day": self.last_day.isoformat(),
            "timestamp_format": self.timestamp_format,
            "seed": self.seed,
            "lines": self.lines,
            "relays": self.relays,
            "files": self.files,
            "counts": self.counts,
            "pflogsumm": self.pflogsumm,
        }

    @classmethod
    def load(cls, path: Path) -> Expected:
        """Read an ``expected.json`` (or the directory holding it)."""
        path = Path(path)
        data = json.loads((path / "expected.json" if path.is_dir() else path).read_text())
        return cls(
            timezone=data["timezone"],
            first_day=date.fromisoformat(data["first_day"]),
            last_day=date.fromisoformat(data["last_day"]),
            counts=data["counts"],
            lines=data["lines"],
            relays=data["relays"],
            pflogsumm=data["pflogsumm"],
            files=data.get("files", []),
            seed=data.get("seed", 1),
            timestamp_format=data.get("timestamp_format", "classic"),
        )

    def day(self, sender: str, day: date | str) -> dict[str, int]:
        """All six columns and their sum for one sender and day (zeros included)."""
        key = day.isoformat() if isinstance(day, date) else day
        row = {c: self.counts.get(sender.lower(), {}).get(key, {}).get(c, 0) for c in COLUMNS}
        row["sum"] = sum(row.values())
        return row

    def totals(self) -> dict[str, int]:
        """Each column summed over all senders and days."""
        out = dict.fromkeys(COLUMNS, 0)
        for days in self.counts.values():
            for row in days.values():
                for column, n in row.items():
                    out[column] += n
        return out


def generate(
    out_dir: Path,
    days: int = 31,
    end: date | None = None,
    *,
    relays: int = 3,
    messages_per_day: int = 300,
    seed: int = 1,
    tz: str = "Asia/Taipei",
    timestamp_format: str = "classic",
    senders: int = 60,
    gzip_rotated: bool = True,
    until: datetime | None = None,
) -> Expected:
    """Write a sample of `days` local days ending with `end` (default: today) under `out_dir`.

    No line is later than `until`; without an `end`, the month ends today, at the present.

    Per relay, ``out_dir/<host>/mail.log*`` (older ``mail.log*`` files there are replaced), and
    ``out_dir/expected.json``. `messages_per_day` is the cluster's mean of submitted messages on a
    day (weekends fewer; bulk mail and the incidents come on top). With two relays or more, the last
    one logs as ``postfix-out`` with long queue IDs. Deterministic for a given seed.
    """
    zone = _check(days, relays, messages_per_day, tz, timestamp_format, senders)
    if end is None:
        until = until or datetime.now(zone)
        end = until.astimezone(zone).date()
    first = end - timedelta(days=days - 1)
    out_dir = Path(out_dir)
    sim = Simulation(
        out_dir,
        first,
        days,
        zone,
        relays=relays,
        per_day=messages_per_day,
        seed=seed,
        timestamp_format=timestamp_format,
        senders=senders,
        gzip_rotated=gzip_rotated,
        until=until.timestamp() if until else None,
    )
    sim.run()
    expected = sim.expected(tz)
    (out_dir / "expected.json").write_text(
        json.dumps(expected.to_json(), indent=1, sort_keys=True) + "\n"
    )
    return expected


class Rng(random.Random):
    """random.Random with cheaper choice and randint (the generator calls them a lot)."""

    def choice(self, seq):  # type: ignore[override]
        return seq[int(self.random() * len(seq))]

    def randint(self, a: int, b: int) -> int:
        return a + int(self.random() * (b - a + 1))

    def pick(self, items: Sequence[T], cumulative: Sequence[float]) -> T:
        """One item by cumulative weights (rng.choices without its per-call set-up)."""
        return items[bisect.bisect(cumulative, self.random() * cumulative[-1])]


def _check(days: int, relays: int, per_day: int, tz: str, fmt: str, senders: int) -> ZoneInfo:
    if days < 1:
        raise ValueError(f"days must be at least 1, not {days}")
    if not 1 <= relays <= MAX_RELAYS:
        raise ValueError(f"relays must be between 1 and {MAX_RELAYS}, not {relays}")
    if per_day < 1:
        raise ValueError(f"messages per day must be at least 1, not {per_day}")
    if senders < 1:
        raise ValueError(f"senders must be at least 1, not {senders}")
    if fmt not in FORMATS:
        raise ValueError(f"timestamp format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    try:
        return ZoneInfo(tz)
    except (ValueError, LookupError) as exc:
        raise ValueError(f"unknown time zone {tz!r}") from exc


# ---------------------------------------------------------------------------------------------
# Time: local days, syslog timestamps, rotation


class Clock:
    """Local days as epoch boundaries, and the syslog timestamp of an epoch time.

    `end`: no line at or after it (the end of the last day, or `until` if earlier).
    """

    def __init__(
        self, first: date, days: int, zone: ZoneInfo, fmt: str, until: float | None = None
    ) -> None:
        self.zone = zone
        self.dates = [first + timedelta(days=i) for i in range(days + 1)]
        self.starts = [datetime.combine(d, time(), zone).timestamp() for d in self.dates]
        self.start = self.starts[0]
        self.end = self.starts[-1] if until is None else min(self.starts[-1], until)
        self.rfc = fmt == "rfc3339"
        self._day = -1
        self._cache: dict[int, str] = {}
        self._offsets: dict[int, str] = {}

    def day_of(self, t: float) -> int:
        return bisect.bisect_right(self.starts, t) - 1

    def local(self, t: float) -> datetime:
        return datetime.fromtimestamp(t, self.zone)

    def classic(self, t: float) -> str:
        """``Mmm dd hh:mm:ss`` (as in anvil's embedded times), whatever the file format."""
        lt = self.local(t)
        return f"{MONTHS[lt.month - 1]} {lt.day:2d} {lt:%H:%M:%S}"

    def stamp(self, t: float) -> str:
        """The timestamp that starts a line (``Mmm dd hh:mm:ss``, or RFC 3339 with µs)."""
        if not self.rfc:
            sec = int(t)
            base = self._cache.get(sec)
            return base if base is not None else self._base(t, sec)
        sec, frac = divmod(int(t * 1_000_000), 1_000_000)
        base = self._cache.get(sec)
        if base is None:
            base = self._base(t, sec)
        return f"{base}.{frac:06d}{self._offsets[sec]}"

    def cached(self) -> dict[int, str]:
        """Timestamps already made, by epoch second (classic ones are whole lines' stamps)."""
        return self._cache

    def _base(self, t: float, sec: int) -> str:
        d = self._day
        if d < 0 or not self.starts[d] <= t < self.starts[d + 1]:
            self._enter_day(self.day_of(t))
        if self._fixed:
            h, rem = divmod(sec - self._midnight, 3600)
            m, s = divmod(rem, 60)
            self._offsets[sec] = self._offset
        else:
            lt = self.local(sec)
            h, m, s = lt.hour, lt.minute, lt.second
            self._offsets[sec] = _offset(lt)
        base = self._cache[sec] = f"{self._prefix}{h:02d}:{m:02d}:{s:02d}"
        return base

    def _enter_day(self, d: int) -> None:
        self._day = d
        self._cache.clear()
        self._offsets.clear()
        day = self.dates[d]
        start, stop = self.starts[d], self.starts[d + 1]
        self._midnight = int(start)
        noon = self.local(start + 43200)
        self._fixed = stop - start == 86400 and self.local(start).utcoffset() == noon.utcoffset()
        self._offset = _offset(noon)
        self._prefix = (
            f"{day.isoformat()}T" if self.rfc else f"{MONTHS[day.month - 1]} {day.day:2d} "
        )

    def rotations(self, rng: random.Random) -> list[float]:
        """cron.daily's logrotate runs on each day at 06:25 and some seconds."""
        return [
            datetime.combine(d, ROTATION, self.zone).timestamp() + rng.uniform(1, 40)
            for d in self.dates[:-1]
        ]


def _offset(lt: datetime) -> str:
    minutes = int(lt.utcoffset().total_seconds()) // 60
    sign = "+" if minutes >= 0 else "-"
    return f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


class LogFiles:
    """One relay's rotated files, written oldest first: ``mail.log.N.gz`` ... ``mail.log``."""

    def __init__(self, directory: Path, host: str, rotations: list[float], gz: bool) -> None:
        self.directory, self.host, self.rotations, self.gz = directory, host, rotations, gz
        self.prefix = f" {host} "
        self.index = 0
        self.next_rotation = rotations[0] if rotations else float("inf")
        self.chunk: list[str] = []  # blocks of lines, without the last newline
        self.last: float | None = None
        self.paths: list[Path] = []
        self.lines = 0
        self._open()

    def name(self, index: int) -> str:
        n = len(self.rotations) - index
        if n == 0:
            return "mail.log"
        return f"mail.log.{n}.gz" if n >= 2 and self.gz else f"mail.log.{n}"

    def _open(self) -> None:
        path = self.directory / self.name(self.index)
        self.paths.append(path)
        # gzip -1 rather than logrotate's -6: three times faster, and no reader can tell
        self.fh = (
            gzip.GzipFile(path, "wb", compresslevel=1, mtime=0)
            if path.suffix == ".gz"
            else open(path, "wb")  # noqa: SIM115 - closed in close()
        )

    def rotate(self) -> None:
        self.close()
        self.index += 1
        self.next_rotation = (
            self.rotations[self.index] if self.index < len(self.rotations) else float("inf")
        )
        self.last = None
        self._open()

    def flush(self) -> None:
        if self.chunk:
            self.fh.write(("\n".join(self.chunk) + "\n").encode())
            self.chunk = []

    def close(self) -> None:
        """Finish the current file; its mtime is the time of its last line."""
        self.flush()
        self.fh.close()
        start = self.rotations[self.index - 1] if self.index else self.next_rotation
        when = self.last if self.last is not None else start
        os.utime(self.paths[-1], (when, when))


# ---------------------------------------------------------------------------------------------
# The cluster: relays, senders, recipient domains


class Relay:
    """One relay host: its syslog name, processes, queue IDs in use and recently freed."""

    def __init__(self, index: int, long_ids: bool, rng: random.Random) -> None:
        self.index, self.long_ids, self.rng = index, long_ids, rng
        self.host = f"smtp{index + 1}"
        self.fqdn = f"{self.host}.nthu.edu.tw"
        self.ip = f"140.114.63.{11 + index}"
        self.syslog = s = "postfix-out" if long_ids else "postfix"
        self.reinject_name = f"{s}/10025/smtpd" if long_ids or index % 2 else f"{s}/smtpd"
        # pflogsumm counts a client= line as received only from a daemon named plain "smtpd"
        self.reinject_received = RECEIVED if self.reinject_name == f"{s}/smtpd" else -1
        self.filter_name = f"{s}/amavis/smtp" if long_ids else f"{s}/smtp"
        self.inodes = SHORT_ID_INODES[index % len(SHORT_ID_INODES)]
        self.pid = rng.randint(1500, 9000)
        self.qmgr = f"{s}/qmgr[{self._next_pid()}]"
        self.amavis = [rng.randint(1000, 4000) for _ in range(3)]
        self.pools = {
            name: [f"{s}/{name}[{self._next_pid()}]" for _ in range(size)]
            for name, size in (
                ("cleanup", 3),
                ("smtp", 8),
                ("bounce", 1),
                ("error", 2),
                ("smtpd", 6),
                ("submission/smtpd", 4),
                ("anvil", 1),
                ("postscreen", 1),
                ("dnsblog", 2),
            )
        }
        self.pools["filter"] = [f"{self.filter_name}[{self._next_pid()}]" for _ in range(4)]
        self.pools["reinject"] = [f"{self.reinject_name}[{self._next_pid()}]" for _ in range(4)]
        self._sec, self._sec_text = -1, ""
        self.inflight: set[str] = set()
        self.freed: list[tuple[str, float]] = []
        self.outages: list[tuple[float, float]] = []
        self.amavis_seq = itertools.count(1)

    def _next_pid(self) -> int:
        self.pid += self.rng.randint(1, 60)
        if self.pid > 32000:
            self.pid -= 30000
        return self.pid

    def proc(self, name: str) -> str:
        """A running process of the given pool, as ``syslog/name[pid]``."""
        pool = self.pools[name]
        return pool[int(self.rng.random() * len(pool))]

    def new_proc(self, name: str) -> str:
        """A fresh process (a new smtpd for a session, say)."""
        return f"{self.syslog}/{name}[{self._next_pid()}]"

    def renew_processes(self) -> None:
        """Daemons exit after max_use requests: replace one process of each pool."""
        for pool in self.pools.values():
            prog = pool[0].split("[")[0]
            pool[self.rng.randrange(len(pool))] = f"{prog}[{self._next_pid()}]"

    def new_qid(self, t: float, reuse: bool = False) -> str:
        if reuse and not self.long_ids and self.freed:
            qid, freed_at = self.rng.choice(self.freed[-200:])
            if freed_at < t - 60 and qid not in self.inflight:
                self.inflight.add(qid)
                return qid
        while True:
            qid = self._make_qid(t)
            if qid not in self.inflight:
                self.inflight.add(qid)
                return qid

    def _make_qid(self, t: float) -> str:
        usec = int((t % 1) * 1_000_000)
        if not self.long_ids:
            low, high = self.inodes
            return f"{usec:05X}{low + int(self.rng.random() * (high - low)):X}"
        sec = int(t)
        if sec != self._sec:
            self._sec, self._sec_text = sec, _base(sec, 6, LONG_ID_ALPHABET)
        inode = self.rng.randint(100_000, 9_000_000)
        return (
            self._sec_text
            + _base(usec, 4, LONG_ID_ALPHABET)
            + "z"
            + _base(inode, 1, LONG_ID_ALPHABET[:51])
        )

    def free(self, qid: str, t: float) -> None:
        self.inflight.discard(qid)
        self.freed.append((qid, t))
        if len(self.freed) > 4000:
            del self.freed[:2000]

    def filter_down(self, t: float) -> bool:
        return any(start <= t < stop for start, stop in self.outages)


def _base(n: int, width: int, alphabet: str) -> str:
    digits = []
    while n:
        n, k = divmod(n, len(alphabet))
        digits.append(alphabet[k])
    return "".join(reversed(digits)).rjust(width, alphabet[0])


class Domain:
    __slots__ = ("name", "mx", "ips", "style", "mode")

    def __init__(self, name: str, mx: str, ips: tuple[str, ...], style: str, mode: str) -> None:
        self.name, self.mx, self.ips, self.style, self.mode = name, mx, ips, style, mode


class Sender:
    __slots__ = ("address", "key", "kind", "login", "client", "ip", "domain", "contacts", "stale")

    def __init__(self, address: str, kind: str, login: str | None, client: str, ip: str) -> None:
        self.address, self.kind, self.login, self.client, self.ip = (
            address,
            kind,
            login,
            client,
            ip,
        )
        self.key = address.lower()
        self.domain = self.key.split("@")[1]
        self.contacts: list[tuple[str, Domain]] = []
        self.stale: list[tuple[str, Domain]] = []  # now and then in a recipient list

    def envelope(self, rng: random.Random) -> str:
        """The address as this message's client wrote it (a few clients capitalise it)."""
        mixed = MIXED_CASE.get(self.key)
        return mixed if mixed and rng.random() < 0.3 else self.address


class Rcpt:
    """A recipient and its fate: `left` deferrals still to come, then `final`."""

    __slots__ = ("addr", "dom", "left", "final", "dkind", "bkind")

    def __init__(
        self, addr: str, dom: Domain, left: int, final: str, dkind: str, bkind: str
    ) -> None:
        self.addr, self.dom, self.left, self.final, self.dkind, self.bkind = (
            addr,
            dom,
            left,
            final,
            dkind,
            bkind,
        )


class Msg:
    """A queued message (one queue ID on one relay)."""

    __slots__ = (
        "relay",
        "qid",
        "who",
        "frm",
        "size",
        "mid",
        "arrival",
        "rcpts",
        "nrcpt",
        "filtering",
        "spam",
        "sender",
        "client_ip",
    )

    def __init__(
        self,
        relay: Relay,
        qid: str,
        sender: Sender | None,
        frm: str,
        size: int,
        mid: str,
        arrival: float,
        rcpts: list[Rcpt],
    ) -> None:
        self.relay, self.qid, self.sender, self.frm = relay, qid, sender, frm
        self.who = frm.lower() or None
        self.size, self.mid, self.arrival, self.rcpts = size, mid, arrival, rcpts
        self.nrcpt = len(rcpts)
        self.filtering = False
        self.spam = False
        self.client_ip = sender.ip if sender else "127.0.0.1"


# ---------------------------------------------------------------------------------------------
# What remote servers answer


def _fmt_delay(x: float) -> str:
    """Postfix's delay format: two significant digits, whole seconds from 10 s on."""
    if x >= 10:
        return str(int(x))
    text = f"{x:.1f}" if x >= 1 else f"{x:.2f}"
    if text[-1] != "0":
        return text
    return text.rstrip("0").rstrip(".") or "0"


def _delays(total: float, a: float, b: float, c: float) -> str:
    d = max(total - a - b - c, 0.0)
    return (
        f"delay={_fmt_delay(total)}, delays={_fmt_delay(a)}/{_fmt_delay(b)}/"
        f"{_fmt_delay(c)}/{_fmt_delay(d)}"
    )


def _gsmtp(rng: random.Random) -> str:
    """Gmail's transaction id, as in ``c34si2363086pgm.445 - gsmtp``."""
    n = rng.getrandbits(64)
    a, b, c, d = (n >> 8) % 26, (n >> 16) % 26, (n >> 24) % 26, (n >> 32) % 26
    return (
        f"{LETTERS[n % 26]}{10 + (n >> 40) % 90}si{1000000 + (n >> 20) % 9000000}"
        f"{LETTERS[a]}{LETTERS[b]}{LETTERS[c]}.{100 + d * 31 % 900} - gsmtp"
    )


def _ok_reply(style: str, t: float, rng: random.Random) -> str:
    if style == "gmail":
        return f"250 2.0.0 OK  {int(t)} {_gsmtp(rng)}"
    if style == "outlook":
        host = f"TYZPR0{rng.randint(1, 6)}MB{rng.randint(1000, 9999)}.apcprd0{rng.randint(1, 6)}"
        return (
            f"250 2.6.0 <{rng.getrandbits(64):016X}@{host}.prod.outlook.com> "
            f"[InternalId={rng.randint(10**12, 10**13)}, Hostname={host}.prod.outlook.com] "
            f"{rng.randint(2000, 90000)} bytes in {rng.uniform(0.05, 0.6):.3f}, "
            f"{rng.uniform(20, 300):.3f} KB/sec Queued mail for delivery"
        )
    if style == "yahoo":
        return "250 ok dirdel"
    if style == "postfix":
        return f"250 2.0.0 Ok: queued as {rng.getrandbits(40):010X}"
    if style == "qq":
        return "250 OK: queued as."
    if style == "exim":
        return (
            f"250 OK id=1{rng.choice('rst')}{rng.getrandbits(20):05X}-000"
            f"{rng.randint(1, 9)}Ab-{rng.randint(10, 99)}"
        )
    return "250 2.0.0 Ok"


def _deferral(
    kind: str, dom: Domain, hp: str, addr: str, relay_ip: str, rng: random.Random
) -> tuple[str, str, str]:
    """(relay field, dsn, reason) of a temporary failure of the given kind."""
    said = f"host {hp} said:"
    if kind == "timeout":
        return "none", "4.4.1", f"connect to {hp}:25: Connection timed out"
    if kind == "dns":
        return (
            "none",
            "4.4.3",
            f"Host or domain name not found. Name service error for "
            f"name={dom.name} type=MX: Host not found, try again",
        )
    if kind == "lost":
        return (
            f"{hp}:25",
            "4.4.2",
            f"lost connection with {hp} while receiving the initial server greeting",
        )
    if kind == "tss":
        return (
            f"{hp}:25",
            "4.7.0",
            f"{said} 421 4.7.0 [TSS04] Messages from {relay_ip} "
            "temporarily deferred due to unexpected volume or user complaints - 4.16.55.1; "
            "see https://postmaster.yahooinc.com/error-codes (in reply to MAIL FROM command)",
        )
    if kind == "ratelimit":
        return (
            f"{hp}:25",
            "4.7.0",
            f"{said} 421-4.7.0 [{relay_ip}      15] Our system has "
            "detected an unusual rate of 421-4.7.0 unsolicited mail originating from your IP "
            "address. To protect our 421-4.7.0 users from spam, mail sent from your IP address "
            "has been temporarily 421-4.7.0 rate limited. For more information, go to 421 4.7.0"
            f"  https://support.google.com/mail/?p=UnsolicitedRateLimitError {_gsmtp(rng)} "
            "(in reply to end of DATA command)",
        )
    if kind == "quota" and dom.style == "gmail":
        return (
            f"{hp}:25",
            "4.2.2",
            f"{said} 452-4.2.2 The recipient's inbox is out of storage "
            "space. Please direct the 452-4.2.2 recipient to 452 4.2.2  "
            f"https://support.google.com/mail/?p=OverQuotaTemp {_gsmtp(rng)} "
            "(in reply to RCPT TO command)",
        )
    if kind == "quota":
        return (
            f"{hp}:25",
            "4.2.2",
            f"{said} 452 4.2.2 <{addr}>: Mailbox is full (in reply to RCPT TO command)",
        )
    if dom.style == "exim":
        return (
            f"{hp}:25",
            "4.7.1",
            f"{said} 451 4.7.1 Greylisting in action, please come back "
            "later (in reply to RCPT TO command)",
        )
    return (
        f"{hp}:25",
        "4.2.0",
        f"{said} 450 4.2.0 <{addr}>: Recipient address rejected: "
        f"Greylisted, see http://postgrey.schweikert.ch/help/{dom.name}.html "
        "(in reply to RCPT TO command)",
    )


def _bounce(
    kind: str,
    dom: Domain,
    hp: str,
    addr: str,
    relay_ip: str,
    sender_domain: str,
    rng: random.Random,
) -> tuple[str, str, str]:
    """(relay field, dsn, reason) of a permanent failure of the given kind."""
    said = f"host {hp} said:"
    if kind == "nxdomain":
        return (
            "none",
            "5.4.4",
            f"Host or domain name not found. Name service error for "
            f"name={dom.name} type=AAAA: Host not found",
        )
    if kind == "dmarc":
        return (
            f"{hp}:25",
            "5.7.26",
            f"{said} 550-5.7.26 Unauthenticated email from "
            f"{sender_domain} is not accepted due to domain's 550-5.7.26 DMARC policy. Please "
            f"contact the administrator of {sender_domain} domain 550-5.7.26 if this was a "
            "legitimate mail. To learn about the DMARC initiative, go 550-5.7.26 to 550 "
            f"5.7.26  https://support.google.com/mail/answer/2451690 {_gsmtp(rng)} "
            "(in reply to end of DATA command)",
        )
    if kind == "denied":
        return (
            f"{hp}:25",
            "5.4.1",
            f"{said} 550 5.4.1 Recipient address rejected: Access "
            "denied. For more information see https://aka.ms/EXOSmtpErrors "
            f"[TY2PEPF0000AB8{rng.randint(0, 9)}.apcprd03.prod.outlook.com] "
            "(in reply to RCPT TO command)",
        )
    if kind == "full":
        return (
            f"{hp}:25",
            "5.2.2",
            f"{said} 552 5.2.2 <{addr}>: Mailbox full (in reply to RCPT TO command)",
        )
    if kind == "spamblock":
        return (
            f"{hp}:25",
            "5.7.1",
            f"{said} 550 5.7.1 Unfortunately, messages from [{relay_ip}] "
            "weren't sent. Please contact your Internet service provider since part of their "
            "network is on our block list (S3150). You can also refer your provider to "
            "http://mail.live.com/mail/troubleshooting.aspx#errors. "
            f"[SG2PEPF000{rng.randint(10000, 99999)}.apcprd02.prod.outlook.com] "
            "(in reply to MAIL FROM command)",
        )
    if kind == "policy":
        return (
            f"{hp}:25",
            "5.7.1",
            f"{said} 550-5.7.1 [{relay_ip}      12] Our system has "
            "detected that this message is 550-5.7.1 likely unsolicited mail. To reduce the "
            "amount of spam sent to Gmail, 550-5.7.1 this message has been blocked. For more "
            "information, go to 550 5.7.1  https://support.google.com/mail/?p=UnsolicitedMessage"
            f"Error {_gsmtp(rng)} (in reply to end of DATA command)",
        )
    if dom.style == "gmail":
        return (
            f"{hp}:25",
            "5.1.1",
            f"{said} 550-5.1.1 The email account that you tried to "
            "reach does not exist. Please try 550-5.1.1 double-checking the recipient's email "
            "address for typos or 550-5.1.1 unnecessary spaces. For more information, go to "
            f"550 5.1.1  https://support.google.com/mail/?p=NoSuchUser {_gsmtp(rng)} "
            "(in reply to RCPT TO command)",
        )
    if dom.style == "yahoo":
        return (
            f"{hp}:25",
            "5.0.0",
            f"{said} 554 delivery error: dd This user doesn't have a "
            f"{dom.name} account ({addr}) [0] - mta{rng.randint(4000, 4999)}.mail.gq1.yahoo.com"
            " (in reply to end of DATA command)",
        )
    if dom.style == "outlook":
        return (
            f"{hp}:25",
            "5.5.0",
            f"{said} 550 5.5.0 Requested action not taken: mailbox "
            "unavailable (S2017062302). [SG1PEPF000082E5.apcprd02.prod.outlook.com] "
            "(in reply to RCPT TO command)",
        )
    return (
        f"{hp}:25",
        "5.1.1",
        f"{said} 550 5.1.1 <{addr}>: Recipient address rejected: "
        "User unknown in local recipient table (in reply to RCPT TO command)",
    )


def _counters(sasl: bool, mails: int, rcpt_ok: int, rcpt_all: int, auth_failed: int) -> str:
    """The ``disconnect from`` counters of a session (``name=ok/total`` when some failed)."""
    parts = [("ehlo", 2, 2)] if sasl else [("ehlo", 1, 1)]
    if sasl:
        parts += [("starttls", 1, 1), ("auth", 1, 1 + auth_failed)]
    parts += [
        ("mail", mails, mails),
        ("rcpt", rcpt_ok, rcpt_all),
        ("data", mails, mails),
        ("quit", 1, 1),
    ]
    ok = total = 0
    words = []
    for name, good, tried in parts:
        ok, total = ok + good, total + tried
        words.append(f"{name}={good}" if good == tried else f"{name}={good}/{tried}")
    words.append(f"commands={ok}" if ok == total else f"commands={ok}/{total}")
    return " ".join(words)


# ---------------------------------------------------------------------------------------------
# Messages: submission, content filter, delivery attempts, retries, expiry, NDNs


class _Messages:
    """The life of messages; mixed into Simulation (which provides emit, rng, relays ...)."""

    rng: random.Random
    clock: Clock
    relays: list[Relay]

    def session(
        self,
        t: float,
        sender: Sender,
        n: int,
        client: tuple[str, str] | None = None,
        hostile: bool = False,
    ) -> None:
        """One SMTP session of `sender` submitting `n` messages (-1: one bulk message)."""
        rng = self.rng
        rnd = rng.random
        relay = rng.choice(self.relays)
        add = self.bufs[relay.index].append
        sasl = sender.login is not None
        name, ip = client or (sender.client, sender.ip)
        peer = f"{name}[{ip}]"
        smtpd = relay.new_proc("submission/smtpd" if sasl else "smtpd")
        add((t, f"{smtpd}: connect from {peer}"))
        if sasl:
            t += 0.02 + 0.18 * rnd()
            add((t, f"{smtpd}: Anonymous TLS connection established from {peer}: {TLS_FROM}"))
        typo = sasl and not hostile and rng.random() < 0.02
        if typo:  # a mistyped password, then the right one
            t += 1 + 5 * rnd()
            self.sasl_failure(t, relay, smtpd, peer, "LOGIN", sender.login)
        t += 0.1 + 1.4 * rnd()
        helo = name if name != "unknown" else f"[192.168.{rng.randint(0, 5)}.{rng.randint(2, 254)}]"
        ok = tried = 0
        for i in range(max(n, 1)):
            if i:
                t += 0.5 + 19.5 * rnd()
            t, accepted, attempted = self.submit(
                t, relay, smtpd, peer, ip, helo, sender, bulk=n < 0, hostile=hostile
            )
            ok += accepted
            tried += attempted
        t += 0.01 + 0.19 * rnd()
        counters = _counters(sasl, max(n, 1), ok, tried, int(typo))
        add((t, f"{smtpd}: disconnect from {peer} {counters}"))

    def submit(
        self,
        t: float,
        relay: Relay,
        smtpd: str,
        peer: str,
        ip: str,
        helo: str,
        sender: Sender,
        bulk: bool,
        hostile: bool,
    ) -> tuple[float, int, int]:
        """One accepted message: client=, cleanup, qmgr, then the content filter."""
        rng = self.rng
        rnd = rng.random
        add = self.bufs[relay.index].append
        frm = sender.envelope(rng)
        rcpts = self.hostile_recipients() if hostile else self.recipients(sender, bulk)
        qid = relay.new_qid(t, reuse=rng.random() < 0.01)
        if sender.login:
            method = "LOGIN" if sender.kind == "webmail" or rng.random() < 0.3 else "PLAIN"
            self.emit(
                t,
                relay,
                f"{smtpd}: {qid}: client={peer}, sasl_method={method}, "
                f"sasl_username={sender.login}",
                sender.key,
                AUTH_RCV,
                RECEIVED,
            )
            self.authenticated(sender.login)
        else:
            self.emit(t, relay, f"{smtpd}: {qid}: client={peer}", pf=RECEIVED)
        tried = len(rcpts)
        if tried >= 2 and rng.random() < 0.015:
            tried += 1
            bad = f"former.{rng.choice(GIVEN)}@{rng.choice(DEPTS)}.nthu.edu.tw"
            self.emit(
                t + 0.01,
                relay,
                f"{smtpd}: {qid}: reject: RCPT from {peer}: 550 5.1.1 "
                f"<{bad}>: Recipient address rejected: User unknown in "
                f"relay recipient table; from=<{frm}> to=<{bad}> "
                f"proto=ESMTP helo=<{helo}>",
                sender.key,
                AUTH_BLK,
                REJECTED,
            )
        t += 0.1 + 1.4 * rnd()
        mid = self.message_id(sender, t)
        add((t, f"{relay.proc('cleanup')}: {qid}: message-id=<{mid}>"))
        if sender.login and rng.random() < 0.9:
            add(
                (
                    t + 0.003,
                    f"opendkim[{1200 + relay.index}]: {qid}: DKIM-Signature "
                    f"field added (s=default, d={sender.domain})",
                )
            )
        t += 0.005 + 0.045 * rnd()
        size = min(int(rng.lognormvariate(8.6, 1.1)) + 400, 26_000_000)
        add(
            (
                t,
                f"{relay.qmgr}: {qid}: from=<{frm}>, size={size}, "
                f"nrcpt={len(rcpts)} (queue active)",
            )
        )
        msg = Msg(relay, qid, sender, frm, size, mid, t, rcpts)
        msg.filtering = True
        msg.spam = hostile and rng.random() < 0.2
        msg.client_ip = ip
        self.filter_hop(msg, t + 0.002 + 0.018 * rnd())
        return t, len(rcpts), tried

    def filter_hop(self, msg: Msg, t: float) -> None:
        """QID1 goes through amavis and comes back as QID2 ("queued as"), then QID2 is delivered."""
        relay, rng = msg.relay, self.rng
        rnd = rng.random
        add = self.bufs[relay.index].append
        if relay.filter_down(t):
            self.filter_deferred(msg, t)
            return
        took = 0.1 + 2.4 * rnd() if msg.nrcpt < 10 else 1.5 + 4.5 * rnd()
        if msg.spam:
            self.filter_bounced(msg, t, took)
            return
        back = t + took * 0.8
        qid2 = relay.new_qid(back)
        reinject = relay.proc("reinject")
        add((back, f"{reinject}: connect from localhost[127.0.0.1]"))
        tc = back + 0.001 + 0.009 * rnd()
        self.emit(
            tc,
            relay,
            f"{reinject}: {qid2}: client=localhost[127.0.0.1]",
            pf=relay.reinject_received,
        )
        size2 = msg.size + rng.randint(600, 1600)
        tq = tc + 0.005 + 0.045 * rnd()
        add((tq - 0.002, f"{relay.proc('cleanup')}: {qid2}: message-id=<{msg.mid}>"))
        add(
            (
                tq,
                f"{relay.qmgr}: {qid2}: from=<{msg.frm}>, size={size2}, "
                f"nrcpt={msg.nrcpt} (queue active)",
            )
        )
        add(
            (
                tq + 0.001,
                f"{reinject}: disconnect from localhost[127.0.0.1] ehlo=1 "
                f"mail=1 rcpt={msg.nrcpt} data=1 quit=1 "
                f"commands={4 + msg.nrcpt}",
            )
        )
        # amavis answers Postfix once QID2 is queued, so the hand-off is usually logged after
        # QID2's client= line; with syslog's coarse ordering it is sometimes logged before.
        ts = t + took if rng.random() < 0.65 else back + 0.0005
        self.amavis(msg, ts - 0.001, "Passed CLEAN {RelayedOutbound}", qid2, took)
        done = self.hand_off(msg, ts, qid2)
        add((done + 0.001, f"{relay.qmgr}: {msg.qid}: removed"))
        relay.free(msg.qid, done + 0.001)
        queued = Msg(relay, qid2, msg.sender, msg.frm, size2, msg.mid, tc, msg.rcpts)
        self.attempt(queued, max(tq, done) + 0.01 + 0.29 * rnd())

    def hand_off(self, msg: Msg, t: float, qid2: str) -> float:
        """QID1's status=sent lines to the filter: nobody's Sent, but pflogsumm's "delivered"."""
        relay, rng = msg.relay, self.rng
        rnd = rng.random
        prog = relay.proc("filter")
        a = 0.01 + 0.29 * rnd()
        timing = _delays(t - msg.arrival, min(a, t - msg.arrival), 0.01, 0)
        for rc in msg.rcpts:
            self.emit(
                t,
                relay,
                f"{prog}: {msg.qid}: to=<{rc.addr}>, relay={FILTER_RELAY}, "
                f"{timing}, dsn=2.0.0, status=sent (250 2.0.0 from "
                f"MTA(smtp:[127.0.0.1]:10025): 250 2.0.0 Ok: queued as {qid2})",
                pf=DELIVERED,
            )
            t += 0.0002
        return t

    def amavis(self, msg: Msg, t: float, verdict: str, qid2: str | None, took: float) -> None:
        relay, rng = msg.relay, self.rng
        rnd = rng.random
        add = self.bufs[relay.index].append
        pid = rng.choice(relay.amavis)
        bank = "ORIGINATING" if msg.sender and msg.sender.login else "MYNETS"
        rcpts = ",".join(f"<{rc.addr}>" for rc in msg.rcpts)
        queued = f", queued_as: {qid2}" if qid2 else ""
        hits = f"{rng.uniform(-3, 2):.3f}" if qid2 else f"{(8 + 22 * rnd()):.3f}"
        add(
            (
                t,
                f"amavis[{pid}]: ({pid:05d}-{next(relay.amavis_seq) % 100:02d}) "
                f"{verdict}, {bank} LOCAL [{msg.client_ip}]:{rng.randint(30000, 65000)}"
                f" [{msg.client_ip}] <{msg.frm}> -> {rcpts}, Queue-ID: {msg.qid}, "
                f"Message-ID: <{msg.mid}>, mail_id: {rng.getrandbits(60):015x}, "
                f"Hits: {hits}, size: {msg.size}{queued}, {int(took * 1000)} ms",
            )
        )

    def filter_bounced(self, msg: Msg, t: float, took: float) -> None:
        """amavis rejects spam: a final non-delivery of every recipient at the filter hop."""
        relay, rng = msg.relay, self.rng
        pid = rng.choice(relay.amavis)
        ts = t + took
        self.amavis(msg, ts - 0.001, "Blocked SPAM {RejectedOutbound}", None, took)
        prog = relay.proc("filter")
        timing = _delays(ts - msg.arrival, min(0.05, ts - msg.arrival), 0.01, 0)
        for rc in msg.rcpts:
            self.emit(
                ts,
                relay,
                f"{prog}: {msg.qid}: to=<{rc.addr}>, relay={FILTER_RELAY}, "
                f"{timing}, dsn=5.7.0, status=bounced (host 127.0.0.1[127.0.0.1]"
                f" said: 554 5.7.0 Reject, id={pid:05d}-{rng.randint(1, 99):02d}"
                " - spam (in reply to end of DATA command))",
                msg.who,
                BOUNCED,
                PF_BOUNCED,
            )
            ts += 0.0002
        failed, msg.rcpts = msg.rcpts, []
        self.after_attempt(msg, ts, failed)

    def filter_deferred(self, msg: Msg, t: float) -> None:
        """amavis is down: QID1's recipients are deferred and retried later."""
        relay, rng = msg.relay, self.rng
        refused = "connect to 127.0.0.1[127.0.0.1]:10024: Connection refused"
        if rng.random() < 0.5:
            prog = relay.proc("filter")
            self.emit(t, relay, f"{prog}: {refused}")
            reason = refused
        else:
            prog, reason = relay.proc("error"), f"delivery temporarily suspended: {refused}"
        timing = _delays(t - msg.arrival, t - msg.arrival, 0, 0)
        for rc in msg.rcpts:
            self.emit(
                t,
                relay,
                f"{prog}: {msg.qid}: to=<{rc.addr}>, relay=none, {timing}, "
                f"dsn=4.4.1, status=deferred ({reason})",
                msg.who,
                DEFERRED,
                DEFERRALS,
            )
        self.schedule(msg, t)

    def retry(self, msg: Msg, t: float) -> None:
        """A deferred message enters the active queue again: qmgr logs its sender again."""
        rnd = self.rng.random
        relay = msg.relay
        add = self.bufs[relay.index].append
        add(
            (
                t,
                f"{relay.qmgr}: {msg.qid}: from=<{msg.frm}>, size={msg.size}, "
                f"nrcpt={msg.nrcpt} (queue active)",
            )
        )
        if msg.filtering:
            self.filter_hop(msg, t + 0.002 + 0.018 * rnd())
        else:
            self.attempt(msg, t + 0.01 + 0.29 * rnd())

    def attempt(self, msg: Msg, t: float) -> None:
        """One delivery attempt of every pending recipient, one SMTP session per destination."""
        rnd = self.rng.random
        groups: dict[str, list[Rcpt]] = {}
        for rc in msg.rcpts:
            groups.setdefault(rc.dom.name, []).append(rc)
        pending: list[Rcpt] = []
        failed: list[Rcpt] = []
        end = t
        for rcpts in groups.values():
            start = t + 0.01 + 0.39 * rnd()
            end = max(end, self.deliver(msg, rcpts, start, pending, failed))
        msg.rcpts = pending
        self.after_attempt(msg, end, failed)

    def deliver(
        self, msg: Msg, rcpts: list[Rcpt], t: float, pending: list[Rcpt], failed: list[Rcpt]
    ) -> float:
        """The status lines of one destination; returns the time of the last one."""
        rng, relay = self.rng, msg.relay
        rnd = rng.random
        add = self.bufs[relay.index].append
        dom = rcpts[0].dom
        hp = f"{dom.mx}[{rng.choice(dom.ips)}]" if dom.ips else ""
        prog, conn, suspended = relay.proc("smtp"), 0.05 + 1.45 * rnd(), False
        if dom.mode == "dead" and all(rc.left > 0 and rc.dkind == "timeout" for rc in rcpts):
            if rng.random() < 0.4:
                prog, conn, suspended = relay.proc("error"), 0.0, True
            else:
                conn = 30.0
                add((t + conn, f"{prog}: connect to {hp}:25: Connection timed out"))
        elif dom.mode == "typo":
            conn = 0.01 + 0.19 * rnd()
        elif dom.style in TLS_TO and rng.random() < 0.9:
            add(
                (
                    t + conn * 0.9,
                    f"{prog}: Trusted TLS connection established to {hp}:25: {TLS_TO[dom.style]}",
                )
            )
        a, b = t - msg.arrival, rng.random() * 0.05
        tl = t + b + conn
        head = f"{prog}: {msg.qid}: to=<"
        fixed = f"{_fmt_delay(a)}/{_fmt_delay(b)}/{_fmt_delay(conn)}/"
        for rc in rcpts:
            tl += 0.02 + rng.random() * 0.4
            status, col, pf, (relay_field, dsn, reason) = self.step(msg, rc, hp, tl)
            if suspended:
                reason = f"delivery temporarily suspended: {reason}"
            elif rng.random() < 0.05 and relay_field != "none":
                relay_field = f"{relay_field}, conn_use={rng.randint(2, 5)}"
            self.emit(
                tl,
                relay,
                f"{head}{rc.addr}>, relay={relay_field}, delay="
                f"{_fmt_delay(tl - msg.arrival)}, delays={fixed}"
                f"{_fmt_delay(tl - t - b - conn)}, dsn={dsn}, status={status} "
                f"({reason})",
                msg.who,
                col,
                pf,
            )
            if status == "deferred":
                pending.append(rc)
            elif status == "bounced":
                failed.append(rc)
        return tl

    def step(self, msg: Msg, rc: Rcpt, hp: str, t: float) -> tuple[str, int, int, tuple]:
        """What happens to `rc` at this attempt: (status, column, pflogsumm column, fields)."""
        relay_ip = msg.relay.ip
        if rc.left > 0:
            rc.left -= 1
            return (
                "deferred",
                DEFERRED,
                DEFERRALS,
                _deferral(rc.dkind, rc.dom, hp, rc.addr, relay_ip, self.rng),
            )
        if rc.final == "sent":
            return (
                "sent",
                SENT,
                DELIVERED,
                (f"{hp}:25", "2.0.0", _ok_reply(rc.dom.style, t, self.rng)),
            )
        sender_domain = msg.frm.split("@")[-1].lower()
        return (
            "bounced",
            BOUNCED,
            PF_BOUNCED,
            _bounce(rc.bkind, rc.dom, hp, rc.addr, relay_ip, sender_domain, self.rng),
        )

    def after_attempt(self, msg: Msg, t: float, failed: list[Rcpt]) -> None:
        """Expire after five days; notify the sender of failures; retry later or remove."""
        relay = msg.relay
        add = self.bufs[relay.index].append
        if msg.rcpts and t - msg.arrival > LIFETIME:
            t += 0.001
            self.emit(
                t,
                relay,
                f"{relay.qmgr}: {msg.qid}: from=<{msg.frm}>, status=expired, returned to sender",
                msg.who,
                EXPIRED,
            )
            failed, msg.rcpts = failed + msg.rcpts, []
        if failed and msg.who:
            t = self.notify(msg, t)
        if msg.rcpts:
            self.schedule(msg, t)
        else:
            t += 0.001
            add((t, f"{relay.qmgr}: {msg.qid}: removed"))
            relay.free(msg.qid, t)

    def notify(self, msg: Msg, t: float) -> float:
        """A non-delivery notification from the null sender back to the sender's mailbox."""
        relay, rng = msg.relay, self.rng
        rnd = rng.random
        add = self.bufs[relay.index].append
        t += 0.01 + 0.29 * rnd()
        nq = relay.new_qid(t)
        lt = self.clock.local(t)
        add((t, f"{relay.proc('cleanup')}: {nq}: message-id=<{lt:%Y%m%d%H%M%S}.{nq}@{relay.fqdn}>"))
        size = rng.randint(2500, 9000)
        add((t + 0.002, f"{relay.qmgr}: {nq}: from=<>, size={size}, nrcpt=1 (queue active)"))
        add(
            (
                t + 0.003,
                f"{relay.proc('bounce')}: {msg.qid}: sender non-delivery notification: {nq}",
            )
        )
        dom = self.domain_of(msg.frm)
        greylisted = not dom.name.endswith("nthu.edu.tw") and rng.random() < 0.15
        rcpt = Rcpt(msg.frm, dom, int(greylisted), "sent", "greylist", "")
        ndn = Msg(relay, nq, None, "", size, "", t + 0.002, [rcpt])
        self.attempt(ndn, t + 0.01 + 0.19 * rnd())
        return t + 0.004

    def schedule(self, msg: Msg, t: float) -> None:
        """Postfix back-off: the wait doubles with the time in queue, 300 s to 4000 s."""
        age = t - msg.arrival
        due = t + min(max(age, 300.0), 4000.0) + self.rng.uniform(0, 300)
        heapq.heappush(self.queue, (due, next(self.seq), msg))


# ---------------------------------------------------------------------------------------------
# Recipients and their fates, message IDs


class _Recipients:
    """Who gets mail and what happens to it; mixed into Simulation."""

    rng: random.Random
    domains: list[Domain]
    domain_weights: list[float]
    by_name: dict[str, Domain]

    def recipients(self, sender: Sender, bulk: bool) -> list[Rcpt]:
        rng = self.rng
        if bulk or rng.random() < 0.004:
            n = rng.randint(45, 60) if bulk else rng.randint(20, 60)
        else:
            n = rng.pick(RCPT_COUNTS, RCPT_CUMULATIVE)
        contacts = sender.contacts or self.contacts(sender)
        out, seen = [], set()
        if sender.stale and rng.random() < 0.05:
            addr, dom = rng.choice(sender.stale)
            seen.add(addr)
            out.append(self.fate(addr, dom, sender, False))
        for _ in range(n - len(out)):
            addr, dom = (
                rng.choice(contacts) if n <= 5 and rng.random() < 0.75 else self.random_address()
            )
            if addr not in seen:
                seen.add(addr)
                out.append(self.fate(addr, dom, sender, bulk or n > 5))
        return out

    def contacts(self, sender: Sender) -> list[tuple[str, Domain]]:
        """The few addresses a sender writes to most."""
        sender.contacts = [self.random_address(live=True) for _ in range(self.rng.randint(4, 20))]
        if sender.key == "lab-server@phys.nthu.edu.tw":  # a stale address and a dead host
            sender.stale = [
                ("former.ta@phys.nthu.edu.tw", self.domain_of("phys.nthu.edu.tw")),
                ("alerts@oldlab-mail.com.tw", self.by_name["oldlab-mail.com.tw"]),
            ]
        return sender.contacts

    def random_address(self, live: bool = False) -> tuple[str, Domain]:
        """A plausible address anywhere (`live`: at a domain that accepts mail)."""
        rng = self.rng
        dom = rng.pick(self.domains, self.domain_weights)
        while live and dom.mode != "ok":
            dom = rng.pick(self.domains, self.domain_weights)
        r = rng.random()
        if r < 0.4:
            local = f"{rng.choice(GIVEN)}.{rng.choice(SURNAMES)}"
        elif r < 0.7:
            local = f"{rng.choice(GIVEN)}{rng.choice(SURNAMES)}{rng.randint(1, 2005)}"
        elif dom.name.endswith("nthu.edu.tw"):
            local = f"s{rng.randint(107, 113)}{rng.randint(0, 99):02d}{rng.randint(1000, 9999)}"
        else:
            local = f"{rng.choice(SURNAMES)}{rng.choice(GIVEN)[0]}{rng.randint(10, 99)}"
        return f"{local}@{dom.name}", dom

    def domain_of(self, address: str) -> Domain:
        """The destination of any address (campus subdomains go to the campus mailbox host)."""
        name = address.rsplit("@", 1)[-1].lower()
        dom = self.by_name.get(name)
        if dom is None:
            if name.endswith("nthu.edu.tw"):
                dom = Domain(
                    name, "mx.nthu.edu.tw", ("140.114.64.25", "140.114.64.26"), "postfix", "ok"
                )
            else:
                rng = self.rng
                ip = f"{rng.randint(60, 210)}.{rng.randint(1, 254)}.1.{rng.randint(2, 254)}"
                dom = Domain(name, f"mx.{name}", (ip,), "generic", "ok")
            self.by_name[name] = dom
        return dom

    def fate(self, addr: str, dom: Domain, sender: Sender, bulk: bool) -> Rcpt:
        """Decide now how every attempt to deliver to `addr` will end."""
        rng = self.rng
        r = rng.random()
        if dom.mode == "typo":
            return Rcpt(addr, dom, 0, "bounced", "", "nxdomain")
        if dom.mode == "dead":  # most never answer again; some come back after hours
            if r < 0.6:
                return Rcpt(addr, dom, 10**9, "expire", "timeout", "")
            return Rcpt(addr, dom, rng.randint(2, 12), "sent", "timeout", "")
        if addr.startswith("former.") or r < (0.05 if bulk else 0.015):
            return Rcpt(addr, dom, 0, "bounced", "", "nouser")
        if sender.kind == "forward" and dom.style == "gmail" and r < 0.3:
            return Rcpt(addr, dom, 0, "bounced", "", "dmarc")
        if dom.style == "outlook" and r < 0.02:
            return Rcpt(addr, dom, 0, "bounced", "", "denied")
        if dom.style == "yahoo" and r < 0.12:
            return Rcpt(addr, dom, rng.randint(1, 4), "sent", "tss", "")
        if dom.style in ("postfix", "exim", "generic") and r < 0.03:
            return Rcpt(addr, dom, 1, "sent", "greylist", "")
        return self.rare_fate(addr, dom, rng.random())

    def rare_fate(self, addr: str, dom: Domain, r: float) -> Rcpt:
        rng = self.rng
        if r < 0.004:  # a full mailbox: emptied later, or given up on
            left, end = rng.randint(2, 15), rng.random()
            if end < 0.5:
                return Rcpt(addr, dom, left, "sent", "quota", "")
            if end < 0.85:
                return Rcpt(addr, dom, left, "bounced", "quota", "full")
            return Rcpt(addr, dom, 10**9, "expire", "quota", "")
        if r < 0.009:
            return Rcpt(addr, dom, 1, "sent", "lost", "")
        if r < 0.011:
            return Rcpt(addr, dom, rng.randint(1, 2), "sent", "dns", "")
        return Rcpt(addr, dom, 0, "sent", "", "")

    def hostile_recipients(self) -> list[Rcpt]:
        """A spam run from a stolen account: webmail users, mostly refused."""
        rng, out = self.rng, []
        for _ in range(rng.randint(20, 50)):
            addr, dom = self.random_address()
            if dom.style == "outlook":
                bkind = "spamblock" if rng.random() < 0.6 else "nouser"
                out.append(Rcpt(addr, dom, 0, "bounced", "", bkind))
            elif dom.style == "gmail":
                r = rng.random()
                if r < 0.3:
                    out.append(Rcpt(addr, dom, 0, "bounced", "", "nouser"))
                elif r < 0.5:
                    out.append(Rcpt(addr, dom, 0, "bounced", "", "policy"))
                elif r < 0.65:
                    out.append(Rcpt(addr, dom, rng.randint(1, 3), "bounced", "ratelimit", "policy"))
                else:
                    out.append(Rcpt(addr, dom, 0, "sent", "", ""))
            elif dom.style == "yahoo":
                out.append(Rcpt(addr, dom, rng.randint(1, 5), "sent", "tss", ""))
            else:
                out.append(self.fate(addr, dom, self.senders[0], True))
        return out

    def message_id(self, sender: Sender, t: float) -> str:
        rng = self.rng
        if sender.kind == "webmail":
            return f"{rng.getrandbits(128):032x}@{WEBMAIL[0]}"
        if sender.kind == "server":
            return f"{int(t)}.{rng.randint(1000, 99999)}.{rng.getrandbits(32):08x}@{sender.client}"
        if sender.kind == "forward":
            return f"CA+{rng.getrandbits(160):040x}@mail.gmail.com"
        u = rng.getrandbits(128)
        return (
            f"{u >> 96:08x}-{(u >> 80) & 0xFFFF:04x}-{(u >> 64) & 0xFFFF:04x}-"
            f"{(u >> 48) & 0xFFFF:04x}-{u & 0xFFFFFFFFFFFF:012x}@{sender.domain}"
        )


# ---------------------------------------------------------------------------------------------
# Abuse and noise: rejects, SASL failures, a compromised account, other daemons


class _Abuse:
    """What the Internet and other programs add to a relay's log; mixed into Simulation."""

    rng: random.Random
    clock: Clock
    relays: list[Relay]
    senders: list[Sender]
    per_day: int

    def side_events(self, d: int) -> None:
        """The day's rejects, password guessing and noise (self-contained sessions)."""
        rng, start = self.rng, self.clock.starts[d]
        scale = self.per_day / 300

        def when() -> float:
            return min(start + rng.uniform(0, 86400), self.cutoff)

        for _ in range(rng.randint(2, 4) + round(6 * scale * rng.random())):
            self.relay_denied(when(), rng.choice(self.relays))
        for _ in range(round(2 * scale * rng.random() + 0.3)):
            self.not_logged_in(when(), rng.choice(self.relays))
        for _ in range(rng.randint(1, 3)):
            self.brute_force(when(), rng.choice(self.relays))
        for relay in self.relays:
            self.noise(d, relay, scale)

    def sasl_failure(
        self, t: float, relay: Relay, smtpd: str, peer: str, mech: str, username: str | None
    ) -> None:
        """``SASL LOGIN authentication failed``: charged to the username's sender, if any."""
        if username is None:  # Cyrus-era: the base64 challenge, no username
            self.emit(
                t,
                relay,
                f"{smtpd}: warning: {peer}: SASL {mech} authentication failed: UGFzc3dvcmQ6",
            )
            return
        who = username.lower() if "@" in username else self.logins[username].key
        self.emit(
            t,
            relay,
            f"{smtpd}: warning: {peer}: SASL {mech} authentication failed: "
            f"authentication failure, sasl_username={username}",
            who,
            AUTH_BLK,
        )

    def attacker(self) -> tuple[str, str]:
        ip = f"{self.rng.choice(ATTACK_NETS)}.{self.rng.randint(2, 254)}"
        if self.rng.random() < 0.7:
            return "unknown", ip
        return f"{ip.replace('.', '-')}.static.example.net", ip

    def guess_username(self) -> str:
        rng, r = self.rng, self.rng.random()
        if r < 0.45:
            return rng.choice(self.senders).key
        if r < 0.75 and self.known_logins:
            return rng.choice(self.known_logins)
        return rng.choice(FAKE_ACCOUNTS)

    def brute_force(
        self,
        t: float,
        relay: Relay,
        username: str | None = None,
        peer: tuple[str, str] | None = None,
    ) -> float:
        """A password-guessing run: a few sessions of failed AUTH commands."""
        rng = self.rng
        name, ip = peer or self.attacker()
        client = f"{name}[{ip}]"
        cyrus = username is None and rng.random() < 0.25
        service = rng.choice(("submission/smtpd", "smtpd"))
        for _ in range(rng.randint(2, 8)):
            smtpd = relay.new_proc(service)
            self.emit(t, relay, f"{smtpd}: connect from {client}")
            tls = service == "submission/smtpd"  # AUTH only after STARTTLS there
            if tls:
                self.emit(
                    t + 0.2,
                    relay,
                    f"{smtpd}: Anonymous TLS connection established from {client}: {TLS_FROM}",
                )
            tries = rng.randint(1, 3)
            for _ in range(tries):
                t += rng.uniform(1, 8)
                guess = None if cyrus else username or self.guess_username()
                if cyrus and rng.random() < 0.5:
                    self.emit(
                        t - 0.01,
                        relay,
                        f"{smtpd}: warning: SASL authentication failure: "
                        "Password verification failed",
                    )
                elif guess and rng.random() < 0.3:
                    self.emit(
                        t - 0.01,
                        relay,
                        f"dovecot: auth-worker({rng.randint(900, 9000)}): "
                        f"pam({guess},{ip},<{rng.getrandbits(64):x}>): "
                        "pam_authenticate() failed: Authentication failure "
                        "(Password mismatch?)",
                    )
                self.sasl_failure(t, relay, smtpd, client, rng.choice(("LOGIN", "PLAIN")), guess)
            t += rng.uniform(0.2, 2)
            hello, done = ("ehlo=2 starttls=1", 3) if tls else ("ehlo=1", 1)
            if rng.random() < 0.5:
                self.emit(t, relay, f"{smtpd}: lost connection after AUTH from {client}")
                counters = f"{hello} auth=0/{tries} commands={done}/{done + tries}"
            else:
                counters = f"{hello} auth=0/{tries} quit=1 commands={done + 1}/{done + 1 + tries}"
            self.emit(t + 0.001, relay, f"{smtpd}: disconnect from {client} {counters}")
            t += rng.uniform(3, 90)
        return t

    def relay_denied(self, t: float, relay: Relay) -> None:
        """An outside client tries to relay through us: NOQUEUE reject (perhaps spoofing us)."""
        rng = self.rng
        name, ip = self.attacker()
        client = f"{name}[{ip}]"
        r = rng.random()
        frm = (
            rng.choice(self.senders).envelope(rng)
            if r < 0.25
            else ""
            if r < 0.4
            else rng.choice(SPAM_FROM)
        )
        to, _ = self.random_address()
        helo = rng.choice(("WIN-8KJ2L3M4N5", "User", f"[{ip}]", "ylmf-pc", "localhost"))
        if rng.random() < 0.8:
            reason = f"554 5.7.1 <{to}>: Relay access denied"
        else:
            reason = f"450 4.7.25 Client host rejected: cannot find your hostname, [{ip}]"
        smtpd = relay.new_proc("smtpd")
        self.emit(t, relay, f"{smtpd}: connect from {client}")
        self.emit(
            t + 0.6,
            relay,
            f"{smtpd}: NOQUEUE: reject: RCPT from {client}: {reason}; "
            f"from=<{frm}> to=<{to}> proto=ESMTP helo=<{helo}>",
            frm.lower() or None,
            AUTH_BLK,
            REJECTED,
        )
        self.emit(
            t + 0.9,
            relay,
            f"{smtpd}: disconnect from {client} ehlo=1 mail=1 rcpt=0/1 quit=1 commands=3/4",
        )

    def not_logged_in(self, t: float, relay: Relay) -> None:
        """A mail client set up without authentication: refused, charged to its sender."""
        rng = self.rng
        users = [s for s in self.senders if s.kind == "sasl"] or self.senders
        sender = rng.choice(users)
        frm = sender.envelope(rng)
        client = f"{sender.client}[{sender.ip}]"
        to, _ = self.random_address()
        smtpd = relay.new_proc("submission/smtpd")
        self.emit(t, relay, f"{smtpd}: connect from {client}")
        self.emit(
            t + 0.1,
            relay,
            f"{smtpd}: Anonymous TLS connection established from {client}: {TLS_FROM}",
        )
        self.emit(
            t + 0.4,
            relay,
            f"{smtpd}: NOQUEUE: reject: RCPT from {client}: 553 5.7.1 "
            f"<{frm}>: Sender address rejected: not logged in; from=<{frm}> "
            f"to=<{to}> proto=ESMTP helo=<[192.168.1.{rng.randint(2, 254)}]>",
            sender.key,
            AUTH_BLK,
            REJECTED,
        )
        self.emit(
            t + 0.7,
            relay,
            f"{smtpd}: disconnect from {client} ehlo=2 starttls=1 mail=1 "
            "rcpt=0/1 quit=1 commands=5/6",
        )

    def incident(self, d: int) -> None:
        """A stolen password: a night-time spam run from abroad, then the locked account refused."""
        victim = self.logins.get("alice") or next(iter(self.logins.values()), None)
        if victim is None:
            return
        rng = self.rng
        peer = ("unknown", f"{rng.choice(ATTACK_NETS)}.{rng.randint(2, 254)}")
        t = self.clock.starts[d] + rng.uniform(2, 3) * 3600
        for _ in range(rng.randint(30, 40)):
            self.session(t, victim, 1, client=peer, hostile=True)
            t += rng.uniform(20, 90)
        relay = rng.choice(self.relays)
        smtpd, client = relay.new_proc("submission/smtpd"), f"{peer[0]}[{peer[1]}]"
        self.emit(t, relay, f"{smtpd}: connect from {client}")
        self.emit(
            t + 0.1,
            relay,
            f"{smtpd}: Anonymous TLS connection established from {client}: {TLS_FROM}",
        )
        frm = "security@paypa1-support.com"  # other senders through the stolen login
        for _ in range(3):
            t += rng.uniform(5, 30)
            self.emit(
                t,
                relay,
                f"{smtpd}: NOQUEUE: reject: RCPT from {client}: 553 5.7.1 <{frm}>: "
                f"Sender address rejected: not owned by user {victim.login}; "
                f"from=<{frm}> to=<{self.random_address()[0]}> proto=ESMTP "
                "helo=<User>",
                frm,
                AUTH_BLK,
                REJECTED,
            )
        self.emit(
            t + 0.5,
            relay,
            f"{smtpd}: disconnect from {client} ehlo=2 starttls=1 auth=1 "
            "mail=3 rcpt=0/3 quit=1 commands=8/11",
        )
        self.brute_force(t + 1800, relay, username=victim.login, peer=peer)

    def noise(self, d: int, relay: Relay, scale: float) -> None:
        start, rng = self.clock.starts[d], self.rng
        for slot in range(144):  # anvil's statistics every 10 minutes of activity
            if rng.random() < 0.5:
                self.anvil(start + slot * 600 + rng.uniform(0, 30), relay)
        for _ in range(5 + round(10 * scale)):
            self.postscreen(start + rng.uniform(0, 86390), relay)
        for _ in range(rng.randint(3, 10)):
            self.warning(start + rng.uniform(0, 86390), relay)

    def anvil(self, t: float, relay: Relay) -> None:
        rng, prog = self.rng, relay.proc("anvil")
        then = self.clock.classic(t - rng.uniform(60, 590))
        ip = f"140.114.{rng.randint(1, 250)}.{rng.randint(2, 254)}"
        self.emit(
            t,
            relay,
            f"{prog}: statistics: max connection rate {rng.randint(1, 12)}/60s "
            f"for (submission:{ip}) at {then}",
        )
        self.emit(
            t,
            relay,
            f"{prog}: statistics: max connection count {rng.randint(1, 4)} for "
            f"(smtp:{ip}) at {then}",
        )
        self.emit(t, relay, f"{prog}: statistics: max cache size {rng.randint(1, 30)} at {then}")

    def postscreen(self, t: float, relay: Relay) -> None:
        """An Internet host at port 25: passed, hung up, or blocklisted and refused."""
        rng = self.rng
        _, ip = self.attacker()
        peer = f"[{ip}]:{rng.randint(20000, 65000)}"
        prog = relay.proc("postscreen")
        self.emit(t, relay, f"{prog}: CONNECT from {peer} to [{relay.ip}]:25")
        r = rng.random()
        if r < 0.4:
            self.emit(t + 0.1, relay, f"{prog}: PASS OLD {peer}")
            smtpd = relay.new_proc("smtpd")
            self.emit(t + 0.12, relay, f"{smtpd}: connect from unknown[{ip}]")
            self.emit(
                t + 2.5, relay, f"{smtpd}: disconnect from unknown[{ip}] ehlo=1 quit=1 commands=2"
            )
        elif r < 0.7:
            self.emit(
                t + 6,
                relay,
                f"{prog}: HANGUP after {rng.uniform(0.1, 6):.2g} from {peer} "
                "in tests before SMTP handshake",
            )
            self.emit(t + 6, relay, f"{prog}: DISCONNECT {peer}")
        else:
            rank = rng.randint(3, 7)
            listed = f"127.0.0.{rng.choice((2, 3, 4, 9))}"
            self.emit(
                t + 0.05,
                relay,
                f"{relay.proc('dnsblog')}: addr {ip} listed by domain zen.spamhaus.org as {listed}",
            )
            self.emit(t + 6, relay, f"{prog}: DNSBL rank {rank} for {peer}")
            to = self.random_address()[0]
            frm = rng.choice(SPAM_FROM)
            self.emit(
                t + 7,
                relay,
                f"{prog}: NOQUEUE: reject: RCPT from {peer}: 550 5.7.1 Service "
                f"unavailable; client [{ip}] blocked using zen.spamhaus.org; "
                f"from=<{frm}>, to=<{to}>, proto=ESMTP, "
                f"helo=<{rng.choice(GIVEN)}-pc>",
                frm,
                AUTH_BLK,
                REJECTED,
            )
            self.emit(t + 7.2, relay, f"{prog}: DISCONNECT {peer}")

    def warning(self, t: float, relay: Relay) -> None:
        rng = self.rng
        name, ip = self.attacker()
        smtpd = relay.new_proc("smtpd")
        kind = rng.randrange(4)
        if kind == 0:
            self.emit(
                t,
                relay,
                f"{smtpd}: warning: hostname {ip.replace('.', '-')}.dynamic."
                f"example.net does not resolve to address {ip}: Name or service "
                "not known",
            )
        elif kind == 1:
            self.emit(
                t, relay, f"{smtpd}: warning: non-SMTP command from unknown[{ip}]: GET / HTTP/1.1"
            )
        elif kind == 2:
            self.emit(t, relay, f"{smtpd}: lost connection after EHLO from {name}[{ip}]")
        else:
            self.emit(
                t,
                relay,
                f"{relay.proc('smtp')}: warning: TLS library problem: "
                "error:0A000126:SSL routines::unexpected eof while reading:"
                "../ssl/record/rec_layer_s3.c:317:",
            )


# ---------------------------------------------------------------------------------------------
# The simulation


class Simulation(_Messages, _Recipients, _Abuse):
    """Generates the cluster's lines hour by hour and writes them to the relays' files."""

    def __init__(
        self,
        out_dir: Path,
        first: date,
        days: int,
        zone: ZoneInfo,
        *,
        relays: int,
        per_day: int,
        seed: int,
        timestamp_format: str,
        senders: int,
        gzip_rotated: bool,
        until: float | None = None,
    ) -> None:
        self.rng = rng = Rng(seed)
        self.seed, self.fmt, self.days, self.per_day = seed, timestamp_format, days, per_day
        self.clock = Clock(first, days, zone, timestamp_format, until)
        self.relays = [Relay(i, relays > 1 and i == relays - 1, rng) for i in range(relays)]
        self.domains, self.domain_weights = _domains()
        self.by_name = {d.name: d for d in self.domains}
        self.senders = _population(senders, rng)
        self.sender_weights = list(itertools.accumulate(_weights(self.senders, per_day, rng)))
        self.logins = {s.login: s for s in self.senders if s.login and "@" not in s.login}
        self.known_logins = [
            s.login for s in self.senders[: len(FIXED_SENDERS)] if s.login in self.logins
        ]
        self._known = set(self.known_logins)
        self.bufs: list[list[tuple[float, str]]] = [[] for _ in self.relays]
        self.seq = itertools.count()
        self.queue: list[tuple[float, int, Msg]] = []
        self.counts: dict[str, dict[int, list[int]]] = {}
        self.pf = [[[0] * len(PFLOGSUMM) for _ in range(days)] for _ in self.relays]
        self.cutoff = self.clock.end - 300  # no new sessions in the last minutes
        self._today, self._day_from, self._day_to = 0, self.clock.starts[0], self.clock.starts[1]
        out_dir.mkdir(parents=True, exist_ok=True)
        rotations = self.clock.rotations(rng)
        self.files = []
        for relay in self.relays:
            directory = out_dir / relay.host
            _clear(directory)
            self.files.append(
                LogFiles(
                    directory, relay.host, [r + rng.uniform(0, 3) for r in rotations], gzip_rotated
                )
            )

    # -- output --------------------------------------------------------------------------

    def emit(
        self, t: float, r: Relay, body: str, who: str | None = None, col: int = -1, pf: int = -1
    ) -> None:
        """Queue one line; count what it evidences unless it falls past the last day."""
        self.bufs[r.index].append((t, body))
        if (col >= 0 and who) or pf >= 0:
            if not self._day_from <= t < self._day_to:
                if t >= self.clock.end:
                    return
                self._today = self.clock.day_of(t)
                self._day_from, self._day_to = self.clock.starts[self._today : self._today + 2]
            d = self._today
            if col >= 0 and who:
                days = self.counts.setdefault(who, {})
                row = days.get(d)
                if row is None:
                    row = days[d] = [0] * len(COLUMNS)
                row[col] += 1
            if pf >= 0:
                self.pf[r.index][d][pf] += 1

    def flush(self, until: float) -> None:
        """Write every queued line earlier than `until` (and than the end), in time order."""
        until = min(until, self.clock.end)
        stamp, rfc = self.clock.stamp, self.clock.rfc
        known = self.clock.cached().get  # the cache is cleared in place, never replaced
        for f, buf in zip(self.files, self.bufs, strict=True):
            buf.sort(key=_first)  # stable: lines of the same instant keep their order
            cut = bisect.bisect_left(buf, until, key=_first)
            ready = buf[:cut]
            del buf[:cut]
            i = 0
            while i < len(ready):
                j = bisect.bisect_left(ready, f.next_rotation, lo=i, key=_first)
                if j > i:
                    prefix, part = f.prefix, ready[i:j]
                    f.chunk.append(
                        "\n".join(
                            [stamp(t) + prefix + body for t, body in part]
                            if rfc
                            else [(known(int(t)) or stamp(t)) + prefix + body for t, body in part]
                        )
                    )
                    f.lines += j - i
                    f.last = ready[j - 1][0]
                if j < len(ready):
                    f.rotate()
                i = j
            f.flush()

    # -- the month ------------------------------------------------------------------------

    def run(self) -> None:
        """The month, day by day; every file closed (with its mtime) even on failure."""
        try:
            self._backlog()
            self._plan_outage()
            incident = min(self.days - 1, self.days * 2 // 3)
            bulk_days = [d for d in range(self.days) if self.clock.dates[d].weekday() == 0]
            bulk_days = bulk_days or [self.days - 1]
            for d in range(self.days):
                for relay in self.relays:
                    relay.renew_processes()
                arrivals = self._arrivals(d)
                self.side_events(d)
                if d == incident:
                    self.incident(d)
                if d in bulk_days:
                    arrivals += self._bulk(d)
                arrivals.sort(key=_first)
                self._run_day(d, arrivals)
            self.flush(float("inf"))
        finally:
            for f in self.files:
                f.close()

    def _run_day(self, d: int, arrivals: list[tuple[float, Sender, int]]) -> None:
        start, stop = self.clock.starts[d], self.clock.starts[d + 1]
        i, hour = 0, start
        while hour < stop:
            until = min(hour + 3600, stop)
            while i < len(arrivals) and arrivals[i][0] < until:
                t, sender, n = arrivals[i]
                self.session(t, sender, n)
                i += 1
            while self.queue and self.queue[0][0] < until:
                due, _, msg = heapq.heappop(self.queue)
                self.retry(msg, due)
            self.flush(until)
            hour = until

    def authenticated(self, login: str) -> None:
        """Remember bare logins that have authenticated: password guesses may use them."""
        if "@" not in login and login not in self._known:
            self._known.add(login)
            self.known_logins.append(login)

    def _backlog(self) -> None:
        """Messages queued before the first day: their retries open the log (orphans)."""
        rng, start = self.rng, self.clock.start
        dead = [d for d in self.domains if d.mode == "dead"]
        for relay in self.relays:
            for _ in range(max(1, round(self.per_day / 500))):
                sender = rng.pick(self.senders, self.sender_weights)
                arrival = start - rng.uniform(600, LIFETIME - 600)
                addr, _ = self.random_address()
                dom = rng.choice(dead)
                rcpts = [
                    Rcpt(f"{addr.split('@')[0]}@{dom.name}", dom, 10**9, "expire", "timeout", "")
                ]
                if rng.random() < 0.5:
                    gmail = self.by_name["gmail.com"]
                    rcpts.append(
                        Rcpt(
                            f"{addr.split('@')[0]}@gmail.com",
                            gmail,
                            rng.randint(1, 30),
                            "sent",
                            "quota",
                            "",
                        )
                    )
                msg = Msg(
                    relay,
                    relay.new_qid(arrival),
                    sender,
                    sender.envelope(rng),
                    rng.randint(2000, 400000),
                    self.message_id(sender, arrival),
                    arrival,
                    rcpts,
                )
                heapq.heappush(self.queue, (start + rng.uniform(0, 4000), next(self.seq), msg))

    def _arrivals(self, d: int) -> list[tuple[float, Sender, int]]:
        """The day's submission sessions: (time, sender, messages in the session)."""
        rng, clock = self.rng, self.clock
        weekend = clock.dates[d].weekday() >= 5
        n = round(self.per_day * (0.65 if weekend else 1.14) * rng.uniform(0.9, 1.1))
        hours = rng.choices(range(24), weights=HOUR_WEIGHTS, k=n)
        who = rng.choices(self.senders, cum_weights=self.sender_weights, k=n)
        start = clock.starts[d]
        out = []
        for hour, sender in zip(hours, who, strict=True):
            t = start + (hour + rng.random()) * 3600
            if t < self.cutoff:
                batch = rng.randint(2, 5) if sender.login == "ta-ds" else 1
                out.append((t, sender, batch))
        if d == 0:  # every bare login of the fixed accounts authenticates on day 1
            for login in self.known_logins:
                out.append((start + rng.uniform(8, 20) * 3600, self.logins[login], 1))
        return out

    def _bulk(self, d: int) -> list[tuple[float, Sender, int]]:
        """An announcement day of the heaviest sender: six messages to 45-60 recipients."""
        sender = next((s for s in self.senders if s.key == "noreply@nthu.edu.tw"), None)
        if sender is None:
            return []
        start = self.clock.starts[d] + 9 * 3600
        return [(start + i * 600 + self.rng.uniform(0, 300), sender, -1) for i in range(6)]

    def _plan_outage(self) -> None:
        """amavis on the first relay is down for a few minutes one afternoon."""
        d = self.days // 2
        start = self.clock.starts[d] + 14 * 3600 + self.rng.uniform(0, 3600)
        self.relays[0].outages.append((start, start + self.rng.uniform(600, 1200)))

    def expected(self, tz: str) -> Expected:
        dates = [d.isoformat() for d in self.clock.dates[:-1]]
        counts = {
            who: {
                dates[d]: {c: n for c, n in zip(COLUMNS, row, strict=True) if n}
                for d, row in sorted(days.items())
                if any(row)
            }
            for who, days in sorted(self.counts.items())
        }
        pf = {
            relay.host: {
                dates[d]: dict(zip(PFLOGSUMM, row, strict=True))
                for d, row in enumerate(self.pf[relay.index])
            }
            for relay in self.relays
        }
        root = self.files[0].directory.parent
        files = [p.relative_to(root).as_posix() for f in self.files for p in f.paths]
        return Expected(
            timezone=tz,
            first_day=self.clock.dates[0],
            last_day=self.clock.dates[-2],
            counts={k: v for k, v in counts.items() if v},
            lines=sum(f.lines for f in self.files),
            relays=[
                {
                    "host": r.host,
                    "syslog_name": r.syslog,
                    "directory": r.host,
                    "queue_ids": "long" if r.long_ids else "short",
                }
                for r in self.relays
            ],
            pflogsumm=pf,
            files=files,
            seed=self.seed,
            timestamp_format=self.fmt,
        )


def _clear(directory: Path) -> None:
    """Remove the ``mail.log*`` files an earlier run left in a relay's directory."""
    directory.mkdir(parents=True, exist_ok=True)
    for path in directory.glob("mail.log*"):
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()


def _domains() -> tuple[list[Domain], list[float]]:
    domains, weights = [], []
    for name, mx, ips, style, weight, mode in DOMAINS:
        domains.append(Domain(name, mx, ips, style, mode))
        weights.append(weight)
    for i, dept in enumerate(DEPTS[:12]):
        ip = f"140.114.{20 + 6 * i}.{25 + i}"
        domains.append(
            Domain(f"{dept}.nthu.edu.tw", f"mail.{dept}.nthu.edu.tw", (ip,), "postfix", "ok")
        )
        weights.append(CAMPUS_WEIGHT / 12)
    return domains, list(itertools.accumulate(weights))


def _population(n: int, rng: random.Random) -> list[Sender]:
    """The fixed cast first, then generated campus users, servers and forwarded senders."""
    out = [Sender(a, k, login, client, ip) for a, k, login, client, ip, _ in FIXED_SENDERS[:n]]
    addresses = {s.key for s in out}
    logins = {s.login for s in out}
    while len(out) < n:
        sender = _random_sender(len(out), rng)
        if sender.key in addresses or (sender.login and sender.login in logins):
            continue
        addresses.add(sender.key)
        logins.add(sender.login)
        out.append(sender)
    return out


def _random_sender(i: int, rng: random.Random) -> Sender:
    dept = rng.choice(DEPTS)
    ip = f"140.114.{rng.randint(1, 250)}.{rng.randint(2, 254)}"
    kind = rng.choices(("sasl", "webmail", "server", "forward"), weights=(50, 25, 15, 10))[0]
    if kind == "server":
        svc = rng.choice(SERVICES)
        host = f"{svc}{rng.randint(1, 9) if rng.random() < 0.5 else ''}.{dept}.nthu.edu.tw"
        return Sender(f"{svc}@{host.split('.', 1)[1]}", kind, None, host, ip)
    if kind == "forward":
        name = f"{rng.choice(GIVEN)}{rng.choice(SURNAMES)}{rng.randint(1, 99)}"
        domain = rng.choice(("gmail.com", "yahoo.com.tw", "hotmail.com", "outlook.com"))
        return Sender(f"{name}@{domain}", kind, None, f"mail.{dept}.nthu.edu.tw", ip)
    if rng.random() < 0.4:
        year = rng.randint(107, 113)
        login = f"s{year}{rng.randint(0, 99):02d}{rng.randint(1000, 9999)}"
        address = f"{login}@m{year}.nthu.edu.tw"
    else:
        login = f"{rng.choice(GIVEN)}.{rng.choice(SURNAMES)}"
        address = f"{login}@{dept}.nthu.edu.tw"
    username = login if rng.random() < 0.5 else address
    if kind == "webmail":
        return Sender(address, kind, username, *WEBMAIL)
    client = "unknown" if rng.random() < 0.5 else f"pc{i}.{dept}.nthu.edu.tw"
    return Sender(address, kind, username, client, ip)


def _weights(senders: list[Sender], per_day: int, rng: random.Random) -> list[float]:
    """Sessions a day per sender: the fixed cast's own rates, the rest Zipf-like."""
    rates = {a: rate for a, *_, rate in FIXED_SENDERS}
    fixed = [rates[s.address] for s in senders if s.address in rates]
    scale = min(1.0, per_day / (2 * sum(fixed))) if fixed else 1.0
    rest = [
        1 / (rank + 2) ** 0.6 * rng.uniform(0.5, 1.5)
        for rank, s in enumerate(senders)
        if s.address not in rates
    ]
    share = max(per_day - sum(fixed) * scale, 1.0) / (sum(rest) or 1.0)
    it = iter(rest)
    return [rates[s.address] * scale if s.address in rates else next(it) * share for s in senders]

"""The cluster and its population: relays (syslog names, processes, queue IDs), recipient domains,
senders, recipients and queued messages, and how the senders and domains are drawn.
"""

from __future__ import annotations

import itertools
import random

from smtplog.sample.campus import (
    CAMPUS_WEIGHT,
    DEPTS,
    DOMAINS,
    FIXED_SENDERS,
    GIVEN,
    MIXED_CASE,
    SERVICES,
    SURNAMES,
    WEBMAIL,
)
from smtplog.sample.expected import RECEIVED

MAX_RELAYS = 9

SHORT_ID_INODES = ((0x1855000, 0x1857FFF), (0x3D000, 0x3FFFF), (0x2A4100, 0x2A7FFF))

LONG_ID_ALPHABET = "0123456789BCDFGHJKLMNPQRSTVWXYZbcdfghjklmnpqrstvwxyz"


class Relay:
    """One relay host: its syslog name, processes, queue IDs in use and recently freed."""

    def __init__(self, index: int, long_ids: bool, rng: random.Random) -> None:
        self.index, self.long_ids, self.rng = index, long_ids, rng
        self.host = f"smtp{index + 1}"
        self.share = 1.0  # of the cluster's traffic, against an even split (relay_weights)
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

"""The simulation: generates the cluster's lines hour by hour and writes them to the relays'
files, counting what each line evidences.
"""

from __future__ import annotations

import bisect
import heapq
import itertools
import operator
import random
import shutil
from collections.abc import Sequence
from datetime import date
from pathlib import Path
from typing import TypeVar
from zoneinfo import ZoneInfo

from smtplog.sample.abuse import _Abuse
from smtplog.sample.campus import FIXED_SENDERS, HOUR_WEIGHTS, LIFETIME
from smtplog.sample.clock import LOGHOST, Clock, LogFiles
from smtplog.sample.cluster import Msg, Rcpt, Relay, Sender, _domains, _population, _weights
from smtplog.sample.expected import COLUMNS, PFLOGSUMM, Expected
from smtplog.sample.messages import _Messages
from smtplog.sample.recipients import _Recipients

T = TypeVar("T")

_first = operator.itemgetter(0)  # sort key of (time, ...) tuples


class Rng(random.Random):
    """random.Random with cheaper choice and randint (the generator calls them a lot)."""

    def choice(self, seq):  # type: ignore[override]
        return seq[int(self.random() * len(seq))]

    def randint(self, a: int, b: int) -> int:
        return a + int(self.random() * (b - a + 1))

    def pick(self, items: Sequence[T], cumulative: Sequence[float]) -> T:
        """One item by cumulative weights (rng.choices without its per-call set-up)."""
        return items[bisect.bisect(cumulative, self.random() * cumulative[-1])]


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
        layout: str = "per-relay",
        relay_weights: Sequence[float] | None = None,
    ) -> None:
        self.rng = rng = Rng(seed)
        self.seed, self.fmt, self.days, self.per_day = seed, timestamp_format, days, per_day
        self.clock = Clock(first, days, zone, timestamp_format, until)
        self.relays = [Relay(i, relays > 1 and i == relays - 1, rng) for i in range(relays)]
        self.relay_cumulative = None
        if relay_weights is not None:
            self.relay_cumulative = list(itertools.accumulate(relay_weights))
            for relay, weight in zip(self.relays, relay_weights, strict=True):
                relay.share = weight * relays / self.relay_cumulative[-1]
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
        # the local day being counted, as [from, to): `to` never past the end (`until`)
        self._today, self._day_from = 0, self.clock.starts[0]
        self._day_to = min(self.clock.starts[1], self.clock.end)
        out_dir.mkdir(parents=True, exist_ok=True)
        rotations = self.clock.rotations(rng)
        # each relay's logrotate runs seconds apart; drawn in either layout, so that both
        # give the same events
        own = [[r + rng.uniform(0, 3) for r in rotations] for _ in self.relays]
        self.central = layout == "central"
        if self.central:
            for relay in self.relays:
                _clear(out_dir / relay.host, keep_directory=False)
            _clear(out_dir / LOGHOST)
            self.files = [LogFiles(out_dir / LOGHOST, "", rotations, gzip_rotated)]
        else:
            _clear(out_dir / LOGHOST, keep_directory=False)
            self.files = []
            for relay, times in zip(self.relays, own, strict=True):
                _clear(out_dir / relay.host)
                self.files.append(LogFiles(out_dir / relay.host, relay.host, times, gzip_rotated))

    def pick_relay(self) -> Relay:
        """The relay a session reaches: evenly, or by `relay_weights`."""
        if self.relay_cumulative is None:
            return self.rng.choice(self.relays)
        return self.rng.pick(self.relays, self.relay_cumulative)

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
                self._day_from, day_to = self.clock.starts[self._today : self._today + 2]
                self._day_to = min(day_to, self.clock.end)
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
        if self.central:
            # as the log host receives them: the relays' lines merged in time order (at the
            # same instant, the first relay's first), each with its relay's host field
            parts = []
            for relay, buf in zip(self.relays, self.bufs, strict=True):
                host = f" {relay.host} "
                parts.append([(t, host + body) for t, body in _take(buf, until)])
            self._write(self.files[0], list(heapq.merge(*parts, key=_first)))
        else:
            for f, buf in zip(self.files, self.bufs, strict=True):
                self._write(f, _take(buf, until))

    def _write(self, f: LogFiles, ready: list[tuple[float, str]]) -> None:
        """Append lines in time order to `f`, rotating it where logrotate ran."""
        stamp, rfc = self.clock.stamp, self.clock.rfc
        known = self.clock.cached().get  # the cache is cleared in place, never replaced
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
                    "directory": LOGHOST if self.central else r.host,
                    "queue_ids": "long" if r.long_ids else "short",
                }
                for r in self.relays
            ],
            pflogsumm=pf,
            files=files,
            seed=self.seed,
            timestamp_format=self.fmt,
        )


def _take(buf: list[tuple[float, str]], until: float) -> list[tuple[float, str]]:
    """Remove and return, in time order, a relay's queued lines earlier than `until`."""
    buf.sort(key=_first)  # stable: lines of the same instant keep their order
    cut = bisect.bisect_left(buf, until, key=_first)
    ready = buf[:cut]
    del buf[:cut]
    return ready


def _clear(directory: Path, keep_directory: bool = True) -> None:
    """Remove the ``mail.log*`` files an earlier run left in a relay's directory.

    Without `keep_directory`, a directory of the other layout: removed if nothing else is left
    in it, so that ``<out>/*/mail.log*`` finds only this run's files.
    """
    if keep_directory:
        directory.mkdir(parents=True, exist_ok=True)
    elif not directory.is_dir():
        return
    for path in directory.glob("mail.log*"):
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()
    if not keep_directory and not any(directory.iterdir()):
        directory.rmdir()

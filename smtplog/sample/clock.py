"""Time and files: local days as epoch boundaries, syslog timestamps (classic and RFC 3339), the
daily rotation at cron.daily's 06:25, and one relay's rotated ``mail.log*`` files.
"""

from __future__ import annotations

import bisect
import gzip
import os
import random
from datetime import date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

FORMATS = ("classic", "rfc3339")
LAYOUTS = ("per-relay", "central")  # a directory per relay, or one log host's for all
LOGHOST = "loghost"  # the central layout's directory

ROTATION = time(6, 25)  # Debian's cron.daily

MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


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
    """One host's rotated files, written oldest first: ``mail.log.N.gz`` ... ``mail.log``.

    A log host's central files have no `host` of their own: each line brings its relay's.
    """

    def __init__(self, directory: Path, host: str, rotations: list[float], gz: bool) -> None:
        self.directory, self.host, self.rotations, self.gz = directory, host, rotations, gz
        self.prefix = f" {host} " if host else ""
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

"""Syslog timestamps: classic (no year, no zone), RFC 3339, and the year-prefixed form.

* classic `Mmm dd hh:mm:ss` (day space-padded; an unpadded day is accepted too): local
  time in the configured zone, the year inferred (see `SyslogClock.year_of`);
* RFC 3339 `YYYY-MM-DDTHH:MM:SS[.ffffff](Z|±HH:MM|±HHMM)`: the line's own offset is kept
  (no offset: the configured zone);
* `YYYY Mmm dd hh:mm:ss[.fff]` (a custom rsyslog template): local time, explicit year.

Classic stamps are parsed by slicing and int(), never strptime, and the last stamp is
cached: a busy relay logs many lines per second.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, tzinfo

MONTHS: dict[str, int] = {
    name: number
    for number, name in enumerate(
        ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"),
        start=1,
    )
}

# The start of a syslog line in one of the forms above (and the unpadded classic day).
_STAMP = re.compile(
    rb"(?:[A-Z][a-z]{2} [ \d]?\d \d\d:\d\d:\d\d "
    rb"|\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d"
    rb"|\d{4} [A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d)"
)


def starts_with_timestamp(line: bytes) -> bool:
    """Whether the line starts the way a syslog line does (to tell a log file from JSON,
    CSV or binary data by its first lines; not a check of the time itself)."""
    return _STAMP.match(line) is not None


# Years a log line can come from. Outside them a stamp is junk, and a time there could
# not even be moved to another zone (datetime ends at year 1 and 9999).
FIRST_YEAR, LAST_YEAR = 1970, 9000

# "mm:ss" -> its offset into the hour: one dict lookup instead of two int() calls.
_MINUTES_SECONDS: dict[str, timedelta] = {
    f"{minute:02d}:{second:02d}": timedelta(minutes=minute, seconds=second)
    for minute in range(60)
    for second in range(60)
}


class SyslogClock:
    """Turns the timestamps of one log stream into aware datetimes.

    Year inference for classic stamps (the state `year`, `last_month` is what a caller
    persists between runs to continue a file):

    * first line: the reference's year (the file's mtime, say), minus one when the
      line's month is after the reference's month (a file written in January starting
      in December);
    * the month falling by more than 6 (Dec -> Jan): the next year;
    * the month rising by more than 6 (a December straggler after January started): the
      previous year, for that line only;
    * smaller steps either way (out-of-order lines of several hosts): same year.

    Restored state (`year` given) takes precedence over the reference; without both,
    the reference is now().
    """

    __slots__ = (
        "tz",
        "year",
        "last_month",
        "_ref_year",
        "_ref_month",
        "_last_stamp",
        "_last_time",
        "_hour_stamp",
        "_hour",
    )

    def __init__(
        self,
        tz: tzinfo,
        reference: datetime | None = None,
        year: int | None = None,
        last_month: int | None = None,
    ):
        self.tz = tz
        if reference is None:
            reference = datetime.now(tz)
        elif reference.tzinfo is None:
            reference = reference.replace(tzinfo=tz)
        else:
            reference = reference.astimezone(tz)
        self._ref_year = reference.year
        self._ref_month = reference.month
        self._hour = reference
        self.set_state(year, last_month)

    def set_state(self, year: int | None, last_month: int | None) -> None:
        """Restore the year inference state; without a year, the next line is a first line."""
        if last_month is not None and not 1 <= last_month <= 12:
            last_month = None
        self.year: int | None = year
        self.last_month: int | None = last_month
        self._last_stamp = ""  # the caches hold years decided under the old state
        self._last_time: datetime | None = None
        self._hour_stamp = ""

    def year_of(self, month: int) -> int:
        """The year of a classic stamp in `month`, updating the inference state."""
        last = self.last_month
        year = self.year
        if year is None:  # the first line: anchored on the reference
            year = self.year = self._ref_year - (month > self._ref_month)
            self.last_month = month
            return year
        if last == month:
            return year
        if last is None:  # a restored year without its month
            self.last_month = month
            return year
        step = month - last
        if step > 6:
            return year - 1  # a straggler: state unchanged
        if step < -6:
            year = self.year = year + 1
        self.last_month = month
        return year

    def classic(self, stamp: str) -> datetime | None:
        """`Mmm dd hh:mm:ss` (exactly 15 characters) or None when it is not a valid time."""
        if stamp == self._last_stamp:  # many lines share a second
            return self._last_time
        if stamp[:9] == self._hour_stamp:  # same hour: same month, same year decision
            offset = _MINUTES_SECONDS.get(stamp[10:15])
            if offset is None or stamp[9] != ":":
                return None
            time = self._hour + offset  # wall-clock arithmetic, as the constructor does
        else:
            time = self._classic(stamp)
            if time is None:
                return None
        self._last_stamp = stamp
        self._last_time = time
        return time

    def _classic(self, stamp: str) -> datetime | None:
        month = MONTHS.get(stamp[:3])
        offset = _MINUTES_SECONDS.get(stamp[10:15])
        if month is None or offset is None or stamp[9] != ":" or stamp[3] != " ":
            return None
        try:
            day = int(stamp[4:6])
            hour = int(stamp[7:9])
        except ValueError:
            return None
        state = self.year, self.last_month
        try:
            base = datetime(self.year_of(month), month, day, hour, tzinfo=self.tz)
        except (ValueError, OverflowError):
            self.year, self.last_month = state  # an invalid line must not move the year
            return None
        self._hour_stamp = stamp[:9]
        self._hour = base
        return base + offset

    def rfc3339(self, stamp: str) -> datetime | None:
        """`YYYY-MM-DDTHH:MM:SS[.f](Z|±HH:MM|±HHMM)` with the line's offset kept."""
        try:
            time = datetime.fromisoformat(stamp)
        except ValueError:
            return None
        if not FIRST_YEAR <= time.year <= LAST_YEAR:
            return None
        if time.tzinfo is None:
            return time.replace(tzinfo=self.tz)
        return time

    def year_prefixed(self, stamp: str) -> datetime | None:
        """`YYYY Mmm dd hh:mm:ss[.fff]` in the configured zone."""
        month = MONTHS.get(stamp[5:8])
        if month is None or stamp[4] != " " or stamp[8] != " " or stamp[11] != " ":
            return None
        fraction = stamp[21:]
        if stamp[14:15] != ":" or stamp[17:18] != ":" or (stamp[20:21] or ".") != ".":
            return None
        try:
            year = int(stamp[:4])
            if not FIRST_YEAR <= year <= LAST_YEAR:
                return None
            micro = int((fraction + "00000")[:6]) if fraction else 0
            return datetime(
                year,
                month,
                int(stamp[9:11]),
                int(stamp[12:14]),
                int(stamp[15:17]),
                int(stamp[18:20]),
                micro,
                tzinfo=self.tz,
            )
        except (ValueError, OverflowError):
            return None

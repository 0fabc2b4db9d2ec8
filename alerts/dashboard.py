"""What the staff dashboard shows, read fully here so its template never queries.

The per-day chart is plain SVG laid out in Python: no JavaScript, no CDN, and it
prints. Every figure comes from DailyCounter (31 small indexed days), never Event.
"""

from __future__ import annotations

import datetime as dt
import math
import os

from django.conf import settings
from django.db.models import Sum
from django.utils import timezone
from django.utils.timesince import timesince
from django.utils.translation import gettext as _

from alerts.models import Alert
from queries.models import Query
from smtplog.ingest import files
from smtplog.models import COLUMNS, LABELS, DailyCounter, LogFile

FIELDS = [column.field for column in COLUMNS]  # Sum, then the six counters
DAYS = 31
TOP_SENDERS = 20
RECENT_QUERIES = 20
# A file with bytes left to read is stuck when the every-minute ingestion has not moved
# its position for this long; a log's current file, when its newest line is this old
# (the relay's log stopped arriving, or stopped being read).
STUCK_AFTER = dt.timedelta(minutes=10)
QUIET_AFTER = dt.timedelta(hours=1)
# Stacked bottom to top, deliveries first; colours tell failures (warm) from success (cool).
STACK = (
    ("sent", "#2e7d32"),
    ("auth_rcv", "#1565c0"),
    ("deferred", "#f9a825"),
    ("bounced", "#c62828"),
    ("expired", "#6a1b9a"),
    ("auth_blk", "#616161"),
)
WIDTH, HEIGHT = 800, 260
LEFT, RIGHT, TOP, BOTTOM = 64, 8, 12, 28


def daily_totals(today: dt.date) -> list[dict]:
    """The counters of every sender summed per day, the last DAYS days, zero days included."""
    first = today - dt.timedelta(days=DAYS - 1)
    sums = {f: Sum(f) for f in FIELDS}
    rows = {
        row["day"]: row
        for row in DailyCounter.objects.filter(day__gte=first, day__lte=today)
        .values("day")
        .annotate(**sums)
        .order_by()
    }
    zero = dict.fromkeys(FIELDS, 0)
    days = [
        {**zero, **rows.get(first + dt.timedelta(days=n), {}), "day": first + dt.timedelta(days=n)}
        for n in range(DAYS)
    ]
    return [{**day, "counts": [day[f] for f in FIELDS]} for day in days]


def nice_ceiling(value: int) -> int:
    """The smallest round number >= value (an axis top whose quarters read well)."""
    if value <= 4:
        return 4  # quarters of whole events
    power = 10 ** math.floor(math.log10(value))
    return next(
        top for step in (1, 2, 2.5, 4, 5, 6, 8, 10) if (top := math.ceil(step * power)) >= value
    )


def chart(days: list[dict]) -> dict:
    """Bar geometry for a stacked SVG bar chart of `days` (coordinates as strings)."""
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    top = nice_ceiling(max(d["total"] for d in days))
    slot = plot_w / len(days)
    bars = []
    for i, day in enumerate(days):
        y = TOP + plot_h
        segments = []
        for field, colour in STACK:
            height = day[field] * plot_h / top
            y -= height
            if day[field]:
                segments.append(
                    {
                        "label": LABELS[field],
                        "colour": colour,
                        "value": day[field],
                        "y": f"{y:.1f}",
                        "height": f"{height:.1f}",
                    }
                )
        bars.append(
            {
                "day": day["day"],
                "total": day["total"],
                "segments": segments,
                "x": f"{LEFT + i * slot + slot * 0.15:.1f}",
                "width": f"{slot * 0.7:.1f}",
                "label_x": f"{LEFT + (i + 0.5) * slot:.1f}",
                # Every fifth day from the last one, so today always has its label.
                "labelled": (len(days) - 1 - i) % 5 == 0,
            }
        )
    ticks = [{"value": top * n // 4, "y": f"{TOP + plot_h - plot_h * n / 4:.1f}"} for n in range(5)]
    return {
        "width": WIDTH,
        "height": HEIGHT,
        "left": LEFT,
        "right": WIDTH - RIGHT,
        "baseline": TOP + plot_h,
        "label_y": HEIGHT - 8,
        "bars": bars,
        "ticks": ticks,
        "legend": [{"label": LABELS[field], "colour": colour} for field, colour in STACK],
    }


def top_senders(day: dt.date) -> list[dict]:
    """The day's biggest senders, their counters, and where their alert stands."""
    rows = list(
        DailyCounter.objects.filter(day=day)
        .order_by("-total", "sender")
        .values("sender", *FIELDS)[:TOP_SENDERS]
    )
    alerts = {
        a.sender: a for a in Alert.objects.filter(day=day, sender__in=[r["sender"] for r in rows])
    }
    for row in rows:
        row["counts"] = [row[f] for f in FIELDS]
        row["alert"] = alerts.get(row["sender"])
        row["over"] = (
            row["total"] >= settings.SMTPLOG_ALERT_SUM_THRESHOLD
            or row["bounced"] >= settings.SMTPLOG_ALERT_BOUNCE_THRESHOLD
        )
    return rows


def log_streams(now: dt.datetime) -> list[dict]:
    """One row per log: a relay's current file, its rotated copies beside it.

    A log is a file name and its rotations in one directory (mail.log, mail.log.1,
    mail.log.2.gz …: one per relay when each relay logs to its own directory), the
    current file the one with the newest lines. Logs with a stuck file come first.
    """
    logs: dict[tuple, list[dict]] = {}
    for f in LogFile.objects.order_by("path"):
        state = file_state(f, now)
        logs.setdefault(log_of(f.path), []).append(state)
    rows = []
    for members in logs.values():
        members.sort(key=lambda s: (s["last_line_time"] or s["first_seen"], s["first_seen"]))
        current, rotated = members[-1], members[:-1]
        newest = current["last_line_time"]
        if newest and now - newest > QUIET_AFTER:
            since = timesince(newest, now)
            current["problems"].append(_("no new line for %(since)s") % {"since": since})
            current["stuck"] = True
        rotated.sort(key=lambda s: files.rotation_key(s["path"]), reverse=True)  # newest first
        rotated.sort(key=lambda s: not s["stuck"])  # stuck ones first
        stuck_rotated = [s for s in rotated if s["stuck"]]
        rows.append(
            {
                "current": current,
                "rotated": rotated,
                "stuck_rotated": stuck_rotated,
                "stuck": current["stuck"] or bool(stuck_rotated),
            }
        )
    rows.sort(key=lambda row: (not row["stuck"], row["current"]["path"]))
    return rows


def log_of(path: str) -> tuple:
    """The log a file belongs to: its directory and its name without a rotation suffix."""
    if path == "-":
        return ("-",)  # standard input: every run is a file of its own
    return files.rotation_key(path)[:2]


def file_state(f: LogFile, now: dt.datetime) -> dict:
    """How far a file is read, and whether it is stuck (an error, or not read on in time)."""
    unread = max(f.size - f.position, 0)
    problems = []
    if f.last_error:
        problems.append(_("error"))
    if unread and now - f.updated > STUCK_AFTER:
        problems.append(_("not read on for %(since)s") % {"since": timesince(f.updated, now)})
    return {
        "path": f.path,
        "name": os.path.basename(f.path),
        "position": f.position,
        "size": f.size,
        "lines": f.lines,
        "unread": unread,
        "first_seen": f.first_seen,
        "last_line_time": f.last_line_time,
        "updated": f.updated,
        "last_error": f.last_error,
        "problems": problems,
        "stuck": bool(problems),
    }


def context(now: dt.datetime | None = None) -> dict:
    now = now or timezone.now()
    today = timezone.localdate(now)
    yesterday = today - dt.timedelta(days=1)
    days = daily_totals(today)
    return {
        "now": now,
        "days": days,
        "chart": chart(days),
        "has_counts": any(d["total"] for d in days),
        "columns": COLUMNS,
        "yesterday": yesterday,
        "top_senders": top_senders(yesterday),
        "sum_threshold": settings.SMTPLOG_ALERT_SUM_THRESHOLD,
        "bounce_threshold": settings.SMTPLOG_ALERT_BOUNCE_THRESHOLD,
        "logs": log_streams(now),
        "stuck_after_minutes": int(STUCK_AFTER.total_seconds() // 60),
        "quiet_after_minutes": int(QUIET_AFTER.total_seconds() // 60),
        "recent_queries": list(Query.objects.order_by("-created")[:RECENT_QUERIES]),
    }

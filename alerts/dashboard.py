"""What the staff dashboard shows, read fully here so its template never queries.

The per-day chart is plain SVG laid out in Python: no JavaScript, no CDN, and it
prints. Every figure comes from DailyCounter (31 small indexed days), never Event.
"""

from __future__ import annotations

import datetime as dt
import math

from django.conf import settings
from django.db.models import Sum
from django.utils import timezone

from alerts.models import Alert
from queries.models import Query
from smtplog.models import COUNTER_FIELDS, DailyCounter, LogFile

DAYS = 31
TOP_SENDERS = 20
RECENT_QUERIES = 20
# Stacked bottom to top, deliveries first; colours tell failures (warm) from success (cool).
STACK = (
    ("sent", "Sent", "#2e7d32"),
    ("auth_rcv", "Auth_rcv", "#1565c0"),
    ("deferred", "Deferred", "#f9a825"),
    ("bounced", "Bounced", "#c62828"),
    ("expired", "Expired", "#6a1b9a"),
    ("auth_blk", "Auth_blk", "#616161"),
)
WIDTH, HEIGHT = 800, 260
LEFT, RIGHT, TOP, BOTTOM = 64, 8, 12, 28


def daily_totals(today: dt.date) -> list[dict]:
    """The counters of every sender summed per day, the last DAYS days, zero days included."""
    first = today - dt.timedelta(days=DAYS - 1)
    sums = {f: Sum(f) for f in ("total", *COUNTER_FIELDS)}
    rows = {
        row["day"]: row
        for row in DailyCounter.objects.filter(day__gte=first, day__lte=today)
        .values("day")
        .annotate(**sums)
        .order_by()
    }
    zero = dict.fromkeys(("total", *COUNTER_FIELDS), 0)
    return [
        {**zero, **rows.get(first + dt.timedelta(days=n), {}), "day": first + dt.timedelta(days=n)}
        for n in range(DAYS)
    ]


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
        for field, label, colour in STACK:
            height = day[field] * plot_h / top
            y -= height
            if day[field]:
                segments.append(
                    {
                        "label": label,
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
        "legend": [{"label": label, "colour": colour} for _, label, colour in STACK],
    }


def top_senders(day: dt.date) -> list[dict]:
    """The day's biggest senders, their counters, and where their alert stands."""
    rows = list(
        DailyCounter.objects.filter(day=day)
        .order_by("-total", "sender")
        .values("sender", "total", *COUNTER_FIELDS)[:TOP_SENDERS]
    )
    alerts = {
        a.sender: a for a in Alert.objects.filter(day=day, sender__in=[r["sender"] for r in rows])
    }
    for row in rows:
        row["alert"] = alerts.get(row["sender"])
        row["over"] = (
            row["total"] >= settings.SMTPLOG_ALERT_SUM_THRESHOLD
            or row["bounced"] >= settings.SMTPLOG_ALERT_BOUNCE_THRESHOLD
        )
    return rows


def log_files(now: dt.datetime) -> list[dict]:
    """Each ingested file: how far it is read, how much is left, how long since its last line."""
    return [
        {
            "path": f.path,
            "position": f.position,
            "size": f.size,
            "lines": f.lines,
            "lag_bytes": max(f.size - f.position, 0),
            "last_line_time": f.last_line_time,
            "updated": f.updated,
            "last_error": f.last_error,
        }
        for f in LogFile.objects.order_by("-updated")
    ]


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
        "yesterday": yesterday,
        "top_senders": top_senders(yesterday),
        "sum_threshold": settings.SMTPLOG_ALERT_SUM_THRESHOLD,
        "bounce_threshold": settings.SMTPLOG_ALERT_BOUNCE_THRESHOLD,
        "log_files": log_files(now),
        "recent_queries": list(Query.objects.order_by("-created")[:RECENT_QUERIES]),
    }

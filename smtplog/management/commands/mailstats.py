"""python manage.py mailstats [--day D] — who sent what that day, from the daily counters."""

from __future__ import annotations

import csv
import datetime as dt
import json

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from smtplog.models import COLUMNS, DailyCounter, normalize_address

FIELDS = [column.field for column in COLUMNS]
HEADINGS = [column.label for column in COLUMNS]


class Command(BaseCommand):
    help = (
        "The seven counters of every sender (or one) on a local day, heaviest first, and "
        "their total. CSV: one row per sender with its day, no total row (for spreadsheets "
        "and scripts); JSON: the day, the senders and the total."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--day", help="local day (TIME_ZONE), YYYY-MM-DD; default: today", default=None
        )
        parser.add_argument("--sender", help="only this envelope sender")
        parser.add_argument("--format", choices=("table", "csv", "json"), default="table")

    def handle(self, *args, day, sender, format, **options):
        if day is None:
            the_day = timezone.localdate()
        else:
            try:
                the_day = dt.date.fromisoformat(day)
            except ValueError:
                raise CommandError(f"--day: {day!r} is not a date like 2026-11-27") from None
        rows = list(day_rows(the_day, sender))
        getattr(self, f"write_{format}")(the_day, sender, rows, total_of(rows))

    def write_table(self, day: dt.date, sender: str | None, rows, total: dict) -> None:
        senders = len(rows)
        whom = f", for {normalize_address(sender)}" if sender else ""
        self.stdout.write(
            f"Mail counted on {day.isoformat()} ({day:%A}), local day in {settings.TIME_ZONE}"
            f"{whom}: {senders} sender{'' if senders == 1 else 's'}."
        )
        if not rows:
            self.stdout.write("(no mail counted that day)")
            return
        self.stdout.write("")
        width = max([len(r["sender"]) for r in rows] + [len("Sender")])
        self.stdout.write(f"{'Sender':<{width}} " + " ".join(f"{h:>8}" for h in HEADINGS))
        for r in [*rows, total]:
            self.stdout.write(f"{r['sender']:<{width}} " + " ".join(f"{r[f]:>8}" for f in FIELDS))

    def write_csv(self, day: dt.date, sender: str | None, rows, total: dict) -> None:
        writer = csv.writer(self.stdout)
        writer.writerow(["Day", "Sender", *HEADINGS])
        for r in rows:
            writer.writerow([day.isoformat(), r["sender"], *(r[f] for f in FIELDS)])

    def write_json(self, day: dt.date, sender: str | None, rows, total: dict) -> None:
        def counts(row: dict) -> dict:
            return {column.label.lower(): row[column.field] for column in COLUMNS}

        out = {
            "day": day.isoformat(),
            "time_zone": settings.TIME_ZONE,
            "senders": [{"sender": r["sender"], **counts(r)} for r in rows],
            "total": counts(total),
        }
        self.stdout.write(json.dumps(out, indent=2))


def day_rows(day: dt.date, sender: str | None = None):
    counters = DailyCounter.objects.filter(day=day)
    if sender:
        counters = counters.filter(sender=normalize_address(sender))
    return counters.order_by("-total", "sender").values("sender", *FIELDS)


def total_of(rows: list[dict]) -> dict:
    """The Total row: each column summed over the rows listed."""
    return {"sender": "Total", **{f: sum(r[f] for r in rows) for f in FIELDS}}

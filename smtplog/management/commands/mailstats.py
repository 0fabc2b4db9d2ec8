"""python manage.py mailstats --day D — who sent what that day, from the daily counters."""

from __future__ import annotations

import csv
import datetime as dt
import json

from django.core.management.base import BaseCommand, CommandError

from smtplog.models import COUNTER_FIELDS, DailyCounter, normalize_address

COLUMNS = ("total", *COUNTER_FIELDS)
HEADINGS = ("Sum", "Auth_blk", "Auth_rcv", "Bounced", "Deferred", "Expired", "Sent")


class Command(BaseCommand):
    help = "The seven counters of every sender (or one) on a local day, heaviest first."

    def add_arguments(self, parser):
        parser.add_argument("--day", required=True, help="local day, YYYY-MM-DD")
        parser.add_argument("--sender", help="only this envelope sender")
        parser.add_argument("--format", choices=("table", "csv", "json"), default="table")

    def handle(self, *args, day, sender, format, **options):
        try:
            the_day = dt.date.fromisoformat(day)
        except ValueError:
            raise CommandError(f"--day: {day!r} is not a date like 2026-11-27") from None
        rows = list(day_rows(the_day, sender))
        getattr(self, f"write_{format}")(rows)

    def write_table(self, rows) -> None:
        width = max([len(r["sender"]) for r in rows] + [6])
        self.stdout.write(f"{'Sender':<{width}} " + " ".join(f"{h:>8}" for h in HEADINGS))
        for r in rows:
            self.stdout.write(f"{r['sender']:<{width}} " + " ".join(f"{r[c]:>8}" for c in COLUMNS))
        if not rows:
            self.stdout.write("(no mail that day)")

    def write_csv(self, rows) -> None:
        writer = csv.writer(self.stdout)
        writer.writerow(["Sender", *HEADINGS])
        for r in rows:
            writer.writerow([r["sender"], *(r[c] for c in COLUMNS)])

    def write_json(self, rows) -> None:
        out = [
            {
                "sender": r["sender"],
                **{h.lower(): r[c] for h, c in zip(HEADINGS, COLUMNS, strict=True)},
            }
            for r in rows
        ]
        self.stdout.write(json.dumps(out, indent=2))


def day_rows(day: dt.date, sender: str | None = None):
    counters = DailyCounter.objects.filter(day=day)
    if sender:
        counters = counters.filter(sender=normalize_address(sender))
    return counters.order_by("-total", "sender").values("sender", *COLUMNS)

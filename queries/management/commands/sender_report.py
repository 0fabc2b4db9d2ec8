"""Print a sender's report, as the emailed one, for staff answering a user's question."""

from __future__ import annotations

import datetime as dt
import json

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from queries.forms import default_range, normalize_email
from queries.report import build_report, render_csv, render_json, render_text


def day(value: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value.replace("/", "-"))
    except ValueError:
        raise CommandError(f"not a date (YYYY-MM-DD): {value!r}") from None


class Command(BaseCommand):
    help = (
        "Print the report of ADDRESS's mail between two local days (default: the last "
        "31 days), as text, CSV (every detail row) or JSON (header, summary, details)."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("address")
        parser.add_argument("--begin", type=day, help="first day, YYYY-MM-DD")
        parser.add_argument("--end", type=day, help="last day, YYYY-MM-DD")
        parser.add_argument("--format", choices=("text", "csv", "json"), default="text")
        parser.add_argument(
            "--language",
            choices=[code for code, _ in settings.LANGUAGES],
            default=settings.LANGUAGE_CODE,
        )

    def handle(
        self, *args, address: str, begin, end, format: str, language: str, **options
    ) -> None:
        first, last = default_range()
        begin, end = begin or first, end or last
        if begin > end:
            raise CommandError("--begin must not be after --end")
        report = build_report(normalize_email(address), begin, end, language=language)
        if format == "json":
            self.stdout.write(json.dumps(render_json(report), ensure_ascii=False, indent=2))
        elif format == "csv":
            self.stdout.write(render_csv(report).lstrip("\ufeff"), ending="")
        else:
            self.stdout.write(render_text(report), ending="")
        if options["verbosity"] > 1:
            self.stderr.write(
                self.style.SUCCESS(f"{len(report.rows)} detail rows, {report.total.total} counted")
            )

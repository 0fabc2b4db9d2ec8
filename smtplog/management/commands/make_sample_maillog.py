"""Write a month of sample relay-cluster logs and the counts they must produce."""

from __future__ import annotations

import shutil
from datetime import date
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from smtplog import sample


class Command(BaseCommand):
    help = (
        "Write realistic Postfix logs of the outgoing relay cluster: per relay, "
        "OUT/<host>/mail.log with Debian's daily rotation (mail.log.1, mail.log.2.gz, ...), and "
        "OUT/expected.json with the exact per-sender, per-day counts and the pflogsumm totals "
        "they must give, up to now at the latest. A new OUT appears whole (it is written "
        "beside it first); in an existing OUT, earlier mail.log* files in OUT/<host>/ are "
        "replaced."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--out", required=True, type=Path, help="directory to write into")
        parser.add_argument("--days", type=int, default=31, help="local days (default 31)")
        parser.add_argument("--end", help="last day, YYYY-MM-DD (default: today, local time)")
        parser.add_argument(
            "--relays",
            type=int,
            default=3,
            help=f"relay hosts, 1-{sample.MAX_RELAYS} (default 3; with 2 or "
            "more the last logs as postfix-out with long queue IDs)",
        )
        parser.add_argument(
            "--messages-per-day",
            type=int,
            default=300,
            help="mean messages submitted to the cluster a day (default 300)",
        )
        parser.add_argument(
            "--senders", type=int, default=60, help="distinct sender accounts (default 60)"
        )
        parser.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
        parser.add_argument(
            "--format",
            choices=sample.FORMATS,
            default="classic",
            dest="timestamp_format",
            help="syslog timestamps: classic (Mmm dd hh:mm:ss) or rfc3339",
        )
        parser.add_argument(
            "--tz", default=None, help="time zone of the logs' local days (default: TIME_ZONE)"
        )

    def handle(self, *args, **options) -> None:
        end = _parse_day(options["end"]) if options["end"] else None
        out = options["out"]
        if out.exists() and not out.is_dir():
            raise CommandError(f"--out {out} exists and is not a directory")
        # A new directory is written aside and moved into place when complete: whoever
        # watches for it (scripts/run, the every-minute task) never sees half a month.
        target = out if out.exists() else out.with_name(out.name + ".partial")
        if target != out:
            shutil.rmtree(target, ignore_errors=True)  # what a killed run left
        try:
            expected = sample.generate(
                target,
                days=options["days"],
                end=end,
                relays=options["relays"],
                messages_per_day=options["messages_per_day"],
                seed=options["seed"],
                tz=options["tz"] or settings.TIME_ZONE,
                timestamp_format=options["timestamp_format"],
                senders=options["senders"],
            )
        except ValueError as exc:
            if target != out:
                shutil.rmtree(target, ignore_errors=True)
            raise CommandError(str(exc)) from exc
        if target != out:
            target.rename(out)
        self.stdout.write(
            f"Wrote {len(expected.files)} files ({len(expected.relays)} relays), "
            f"{expected.lines:,} lines, {options['senders']:,} sender accounts "
            f"({len(expected.counts):,} addresses with counts), {expected.first_day} to "
            f"{expected.last_day}, to {out}; expected counts in {out / 'expected.json'}"
        )


def _parse_day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError as exc:
        raise CommandError(f"--end must be a date as YYYY-MM-DD, not {text!r}") from exc

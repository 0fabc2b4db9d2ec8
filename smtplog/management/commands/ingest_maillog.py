"""python manage.py ingest_maillog PATH... — read Postfix logs into the event store."""

from __future__ import annotations

import time

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from smtplog.ingest import files
from smtplog.ingest.run import IngestBusy, IngestFailed, Summary, ingest


class Command(BaseCommand):
    help = (
        "Ingest Postfix log files (paths or globs, plain or .gz, '-' for standard input). "
        "Rotated copies are read oldest first; each file resumes where the last run stopped."
    )

    def add_arguments(self, parser):
        parser.add_argument("paths", nargs="+", help="files or globs, e.g. '/var/log/mail.log*'")
        parser.add_argument(
            "--follow",
            action="store_true",
            help="keep reading as the files grow and rotate (Ctrl-C stops)",
        )
        parser.add_argument(
            "--interval",
            type=float,
            default=2.0,
            help="seconds between reads with --follow (default 2)",
        )
        parser.add_argument("--no-progress", action="store_true", help="no progress bar")

    def handle(self, *args, paths, follow, interval, no_progress, verbosity, **options):
        if interval <= 0:
            raise CommandError("--interval must be a positive number of seconds")
        if not any(files.expand([p]) for p in paths):
            raise CommandError("no file matches " + " ".join(paths))
        try:
            while True:
                summary = self.run_once(paths, show_progress=not no_progress and verbosity > 0)
                if verbosity > 0 and (summary.lines or not follow):
                    self.report(summary)
                if not follow:
                    break
                time.sleep(interval)
        except KeyboardInterrupt:
            self.stdout.write("stopped")
        except IngestBusy as exc:
            raise CommandError(f"another ingester is running ({exc})") from None
        except IngestFailed as exc:
            raise CommandError(f"ingestion stopped: {exc}") from None

    def run_once(self, paths: list[str], show_progress: bool) -> Summary:
        bar = tqdm(
            unit=" lines",
            unit_scale=True,
            disable=not show_progress,
            file=self.stderr._out,
            mininterval=0.5,
        )
        with bar:
            return ingest(paths, progress=bar.update)

    def report(self, s: Summary) -> None:
        skipped = ", ".join(f"{reason} {n}" for reason, n in s.skipped.most_common()) or "none"
        self.stdout.write(
            f"files {s.files}, lines read {s.lines}, parsed {s.parsed}, skipped: {skipped}\n"
            f"events written {s.events}, messages written {s.messages}, "
            f"{s.seconds:.1f} s, {s.lines_per_second:,.0f} lines/s"
        )
        for error in s.errors:
            self.stderr.write(self.style.ERROR(error))
        if not s.errors:
            self.stdout.write(self.style.SUCCESS("done"))

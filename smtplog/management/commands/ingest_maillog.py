"""python manage.py ingest_maillog PATH... — read Postfix logs into the event store."""

from __future__ import annotations

import gc
import glob
import os
import time

from django.core.management.base import BaseCommand, CommandError, OutputWrapper
from tqdm import tqdm

from smtplog.ingest import files
from smtplog.ingest.run import IngestBusy, IngestFailed, Summary, ingest

RESUMES = "what was committed stays, and the next run goes on from there"


class Command(BaseCommand):
    help = (
        "Ingest Postfix log files (paths or globs, plain or .gz, '-' for standard input). "
        "Rotated copies are read oldest first; each file resumes where the last run stopped."
    )
    # No system checks at each run (a cron line may run it every minute): they took
    # 0.15-0.2 s of the one-process start of every run (bench/ingest.py). The services
    # (web, worker) and `manage.py check --deploy` check the project.
    requires_system_checks = []

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
        # What is loaded by now (Django, the project) lives as long as this process does.
        # Frozen, the cyclic collector no longer walks it: not in the forked workers (no
        # copy-on-write of the pages it would touch), not during the run, not at the exit,
        # where walking it took 0.17-0.23 s of every run's end (0.02 s frozen).
        gc.freeze()
        if interval <= 0:
            raise CommandError("--interval must be a positive number of seconds")
        missing = [
            p for p in paths if p != "-" and not glob.has_magic(p) and not os.path.lexists(p)
        ]
        if missing:
            raise CommandError("no such file: " + ", ".join(missing))
        if not any(files.expand([p]) for p in paths):
            raise CommandError("no file matches " + " ".join(paths))
        reported: list[str] = []
        try:
            while True:
                summary = self.run_once(paths, show_progress=not no_progress and verbosity > 0)
                if verbosity > 0 and (summary.lines or not follow):
                    self.report(summary)
                if not follow:
                    if summary.errors:
                        raise CommandError("; ".join(summary.errors) + f" ({RESUMES})")
                    break
                if summary.errors != reported:  # following: say each new trouble once
                    for error in summary.errors:
                        self.stderr.write(error)
                    reported = summary.errors
                time.sleep(interval)
        except KeyboardInterrupt:
            self.stdout.write("stopped")
        except IngestBusy as exc:
            raise CommandError(f"another ingester is running ({exc})") from None
        except IngestFailed as exc:
            raise CommandError(f"ingestion stopped: {exc} ({RESUMES})") from None

    def run_once(self, paths: list[str], show_progress: bool) -> Summary:
        bar = ProgressBar(self.stderr, enabled=show_progress)
        try:
            return ingest(paths, progress=bar)
        finally:
            bar.close()

    def report(self, s: Summary) -> None:
        for note in s.notes:
            self.stdout.write(self.style.WARNING(note))
        skipped = ", ".join(f"{reason} {n}" for reason, n in s.skipped.most_common()) or "none"
        self.stdout.write(
            f"files {s.files}, lines read {s.lines}, parsed {s.parsed}, skipped: {skipped}\n"
            f"events written {s.events}, messages written {s.messages}, "
            f"{s.seconds:.1f} s, {s.lines_per_second:,.0f} lines/s"
        )
        if not s.errors:
            self.stdout.write(self.style.SUCCESS("done"))


class ProgressBar:
    """Bytes read of the bytes to read, a percentage and the time left (tqdm), on stderr.

    Shown once ingest() says how much there is to read, and only when there is some.
    """

    def __init__(self, out: OutputWrapper, enabled: bool):
        self.out = out
        self.enabled = enabled
        self.bar: tqdm | None = None

    def start(self, total: int | None) -> None:
        if self.enabled and total != 0:
            self.bar = tqdm(
                total=total,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                file=self,
                mininterval=0.5,
                dynamic_ncols=True,
            )

    def advance(self, done: int) -> None:
        if self.bar is not None:
            self.bar.update(done)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()

    # tqdm writes here: through the command's stderr, as it is, with no newline added.
    @property
    def encoding(self) -> str:
        return self.out.encoding  # (AttributeError without one: tqdm then draws in ASCII)

    def write(self, text: str) -> None:
        self.out.write(text, style_func=str, ending="")

    def flush(self) -> None:
        self.out.flush()

"""manage.py purge_expired: what the nightly purge does, by hand."""

from __future__ import annotations

from django.conf import settings
from django.core.management.base import BaseCommand
from django.utils import timezone

from smtplog import retention


class Command(BaseCommand):
    help = (
        "Delete events, messages, daily counters, queries, alerts, the trace audit, SASL login "
        "aliases and expired captchas older than SMTPLOG_RETENTION_DAYS, in batches of at most "
        f"{retention.BATCH_SIZE} rows per transaction."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--dry-run", action="store_true", help="count what would be deleted; delete nothing"
        )

    def handle(self, *args, dry_run: bool = False, verbosity: int = 1, **options) -> None:
        moment = retention.cutoff()
        counts = retention.purge(dry_run=dry_run)
        if not verbosity:
            return
        verb = "would delete" if dry_run else "deleted"
        self.stdout.write(
            f"Retention {settings.SMTPLOG_RETENTION_DAYS} days: cutoff "
            f"{timezone.localtime(moment):%Y-%m-%d %H:%M %Z}"
        )
        for kind, n in counts.items():
            self.stdout.write(f"  {kind}: {n}")
        self.stdout.write(self.style.SUCCESS(f"{verb} {sum(counts.values())} rows"))

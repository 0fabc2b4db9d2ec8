"""The health check of /healthz, for a monitoring system or a systemd timer."""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError

from smtplog import health


class Command(BaseCommand):
    help = (
        "Check the database, the broker, celery beat, ingestion, the nightly alerts and "
        "each log file's lag; print the result as JSON; exit 1 when anything fails."
    )

    def handle(self, *args, verbosity: int = 1, **options) -> None:
        report = health.check()
        if verbosity:
            self.stdout.write(json.dumps(report.as_dict(), indent=2))
        if not report.healthy:
            raise CommandError(f"unhealthy: {', '.join(report.failing)}")
        if verbosity:
            self.stdout.write(self.style.SUCCESS("healthy"))

"""manage.py send_alerts: the nightly alert pass by hand, or a look at it with --dry-run."""

from __future__ import annotations

import datetime as dt

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from alerts import alerting
from smtplog.models import Heartbeat


def local_day(value: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise CommandError(f"--date: expected YYYY-MM-DD, got {value!r}") from None


class Command(BaseCommand):
    help = (
        "Alert the campus senders at or over the thresholds: yesterday and the missed days "
        "of the catch-up window, or only --date. Each sender-day is alerted once, ever."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--date", type=local_day, help="only this local day (YYYY-MM-DD)")
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help="show who would be alerted and why; send and record nothing",
        )

    def handle(
        self,
        *args,
        date: dt.date | None = None,
        dry_run: bool = False,
        verbosity: int = 1,
        **options,
    ) -> None:
        days = [date] if date else alerting.catch_up_days()
        if date and not self.alertable(date):
            raise CommandError(
                f"{date} cannot be alerted: it is not over yet, or its events "
                "are partly purged already"
            )
        for day in days:
            self.show(day, verbosity)
        if dry_run:
            if verbosity:
                self.stdout.write("Dry run: nothing sent, nothing recorded.")
            return
        outcomes = alerting.run_alerts(days)
        if not date:  # a whole nightly pass, as the scheduled task does
            Heartbeat.record("alerts")
        summary = ", ".join(f"{n} {what}" for what, n in sorted(outcomes.items())) or "none to send"
        if verbosity:
            self.stdout.write(self.style.SUCCESS(f"Alerts: {summary}."))

    @staticmethod
    def alertable(day: dt.date) -> bool:
        # Any finished day whose events are all still kept, not only the catch-up window.
        today = timezone.localdate()
        return timezone.localdate(alerting.cutoff()) < day < today

    def show(self, day: dt.date, verbosity: int) -> None:
        """One line per sender-day over a threshold: why, and whether it is alerted already."""
        candidates = alerting.over_threshold(day)
        if verbosity:
            self.stdout.write(f"{day}: {len(candidates)} sender(s) at or over a threshold")
        if verbosity < 1:
            return
        for candidate in candidates:
            alert = candidate.alert
            if alert is None:
                state = "to alert"
            elif alert.state == alert.State.SENT:
                state = f"alerted {timezone.localtime(alert.sent_at):%Y-%m-%d %H:%M}"
            else:
                state = f"alert {alert.state}, {alert.attempts} attempt(s)"
            self.stdout.write(f"  {candidate.sender}  {'; '.join(candidate.reasons)}  [{state}]")

"""manage.py trace: the staff trace search for the command line (audited like the pages)."""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError

from tracing import audit, export, search
from tracing.forms import TraceForm

FIELDS = (
    "sender",
    "recipient",
    "queue_id",
    "message_id",
    "client_ip",
    "sasl_username",
    "relay",
    "status",
    "since",
    "until",
)

OPTIONS = {"sasl_username": "--sasl-login", "__all__": "search"}  # where they differ


class Command(BaseCommand):
    help = (
        "Find messages by sender, recipient, queue ID, Message-ID, client IP or SASL login, "
        "each with its recipients' final status and what the logs do not show. Addresses "
        "match whole or by their beginning (alice@, alice@cs., ali*). Without a range: the "
        "last 24 hours. Every run is recorded in the trace audit."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--sender")
        parser.add_argument("--recipient")
        parser.add_argument("--queue-id", dest="queue_id")
        parser.add_argument("--message-id", dest="message_id")
        parser.add_argument("--client-ip", dest="client_ip")
        parser.add_argument("--sasl-login", dest="sasl_username")
        parser.add_argument("--relay", help="relay host name as logged")
        parser.add_argument("--status", help="sent, bounced, deferred, expired, auth_rcv, auth_blk")
        parser.add_argument("--since", help="YYYY-MM-DD or YYYY-MM-DD HH:MM (local time)")
        parser.add_argument("--until", help="YYYY-MM-DD or YYYY-MM-DD HH:MM (local time)")
        parser.add_argument("--format", choices=("text", "json"), default="text")
        parser.add_argument(
            "--limit",
            type=int,
            default=100,
            help=f"results at most (1 to {search.EXPORT_LIMIT}, default 100)",
        )

    def handle(self, *args, format: str = "text", limit: int = 100, **options) -> None:
        if not 1 <= limit <= search.EXPORT_LIMIT:
            raise CommandError(f"--limit: give 1 to {search.EXPORT_LIMIT}")
        criteria = self.criteria(options)
        results, more = search.search(criteria, limit)
        audit.record_command(criteria.as_dict(), len(results))
        if format == "json":
            data = export.search_json(criteria, results, more)
            self.stdout.write(json.dumps(data, ensure_ascii=False, indent=2))
        else:
            self.stdout.write(export.render_text(results, more), ending="")

    def criteria(self, options: dict) -> search.Criteria:
        """The options checked by the search page's own form."""
        form = TraceForm({name: options[name] for name in FIELDS if options.get(name)})
        if not form.is_valid():
            problems = [
                f"{OPTIONS.get(name, '--' + name.replace('_', '-'))}: {' '.join(errors)}"
                for name, errors in form.errors.items()
            ]
            raise CommandError("\n".join(problems))
        return form.criteria()

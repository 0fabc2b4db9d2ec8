"""An email backend that fails the first sends with a chosen exception, then delivers."""

from __future__ import annotations

from django.core import mail
from django.core.mail.backends.locmem import EmailBackend


class FlakyBackend(EmailBackend):
    failures: list[Exception] = []  # raised in order, one per send, before delivering

    def send_messages(self, messages) -> int:
        if FlakyBackend.failures:
            raise FlakyBackend.failures.pop(0)
        return super().send_messages(messages)


def fail_next(settings, *exceptions: Exception) -> None:
    settings.EMAIL_BACKEND = "tests.queries.backends.FlakyBackend"
    FlakyBackend.failures = list(exceptions)
    mail.outbox = []

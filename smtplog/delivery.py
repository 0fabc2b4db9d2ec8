"""Sending the service's mail: one retry policy and one claim lease for reports and alerts.

A report (queries.sending) and an alert (alerts.alerting) are each sent by a task that
first claims its row for CLAIM_LEASE with a conditional UPDATE, then sends through send()
below, which sorts every failure into transient (a 4xx, a timeout, a dropped connection:
retried after retry_countdown()) or permanent (a 5xx: recorded, never retried).

What goes into logs, task results and stored errors is describe(exc): the exception's
kind and SMTP codes, never the server's text, which quotes the recipient's address as
often as not ("450 4.2.1 <name@…>: try again later").
"""

from __future__ import annotations

import datetime as dt
import random
import re
import smtplib

from django.conf import settings

# The send tasks' time limits, and the claim that outlives them: a worker killed while
# holding a claim has surely lost it once the lease is over, so another may take it.
SOFT_TIME_LIMIT = settings.SMTPLOG_SEND_TIME_LIMIT
TIME_LIMIT = SOFT_TIME_LIMIT + 10
CLAIM_LEASE = dt.timedelta(seconds=TIME_LIMIT + 10)

MAX_RETRIES = 8
MAX_BACKOFF = 15 * 60  # seconds; the broker's visibility timeout must stay above it

_ADDRESS = re.compile(r"\S+@\S+")
_ENHANCED_CODE = re.compile(r"\b[245]\.\d{1,3}\.\d{1,3}\b")


class SendError(Exception):
    """A send failed; str() is describe() of the cause, safe to log and store."""


class TransientSendError(SendError):
    """Worth trying again later."""


class PermanentSendError(SendError):
    """The server refused for good (5xx)."""


def is_transient(exc: Exception) -> bool:
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        return all(code < 500 for code, _msg in exc.recipients.values())
    if isinstance(exc, smtplib.SMTPResponseException):
        return exc.smtp_code < 500
    return isinstance(exc, smtplib.SMTPServerDisconnected | OSError)


def _codes(code: int, text: bytes | str) -> str:
    if isinstance(text, bytes):
        text = text.decode("ascii", "replace")
    enhanced = _ENHANCED_CODE.search(text)
    return f"{code} {enhanced[0]}" if enhanced else str(code)


def describe(exc: BaseException) -> str:
    """The failure's kind and SMTP codes: "SMTPRecipientsRefused: 450 4.2.1", no address."""
    name = type(exc).__name__
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        codes = sorted({_codes(code, text) for code, text in exc.recipients.values()})
        return f"{name}: {', '.join(codes)}"
    if isinstance(exc, smtplib.SMTPResponseException):
        return f"{name}: {_codes(exc.smtp_code, exc.smtp_error)}"
    if isinstance(exc, OSError) and exc.strerror:
        return f"{name}: {exc.strerror}"
    text = _ADDRESS.sub("<address>", str(exc))[:200]
    return f"{name}: {text}" if text else name


def send(message) -> None:
    """Send one EmailMessage; a failure is raised as Transient- or PermanentSendError.

    The original exception is not chained: its text and traceback name the recipient.
    """
    try:
        message.send()
    except (smtplib.SMTPException, OSError) as exc:
        kind = TransientSendError if is_transient(exc) else PermanentSendError
        raise kind(describe(exc)) from None


def retry_countdown(retries: int) -> int | None:
    """Seconds before the next try after `retries` retries, None once they are used up.

    Exponential backoff with full jitter: the first retry comes any time within
    SMTPLOG_SEND_RETRY_BACKOFF seconds, the n-th within twice as long as the one before,
    at most MAX_BACKOFF; spread out, so many sends refused at once do not return at once.
    """
    if retries >= MAX_RETRIES:
        return None
    return random.randint(0, min(MAX_BACKOFF, settings.SMTPLOG_SEND_RETRY_BACKOFF * 2**retries))


class RetryLater(Exception):
    """Raised by a send function for its task: retry in `countdown` seconds."""

    def __init__(self, countdown: int, reason: str) -> None:
        super().__init__(reason)
        self.countdown = countdown


def run_task(task, send_one, row_id: int) -> str:
    """The body of a send task: send_one(row_id, retries=...), retried when it says so."""
    try:
        return send_one(row_id, retries=task.request.retries)
    except RetryLater as later:
        raise task.retry(countdown=later.countdown, exc=later) from None


TASK_OPTIONS = {
    "bind": True,
    "soft_time_limit": SOFT_TIME_LIMIT,
    "time_limit": TIME_LIMIT,
    "max_retries": MAX_RETRIES,
}

"""The one place outgoing mail is built (after healthchecks' hc/lib/emails.py).

A message kind NAME has three templates: emails/NAME-subject.txt, emails/NAME-body.txt
and emails/NAME-body.html. The context is built fully by the caller (templates never
query) and rendered in the language asked for.
"""

from __future__ import annotations

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.template.loader import render_to_string
from django.utils import translation


def make_message(
    name: str,
    to: str,
    ctx: dict,
    language: str,
    headers: dict | None = None,
    attachments: list[tuple[str, bytes | str, str]] | None = None,
) -> EmailMultiAlternatives:
    """Render message kind `name` for one recipient, in `language`."""
    with translation.override(language):
        subject = render_to_string(f"emails/{name}-subject.txt", ctx)
        subject = " ".join(subject.split())  # one line, no stray newlines
        text = render_to_string(f"emails/{name}-body.txt", ctx)
        html = render_to_string(f"emails/{name}-body.html", ctx)
    all_headers = {"Auto-Submitted": "auto-generated", "X-Auto-Response-Suppress": "All"}
    all_headers.update(headers or {})
    message = EmailMultiAlternatives(
        subject, text, settings.DEFAULT_FROM_EMAIL, [to], headers=all_headers
    )
    message.attach_alternative(html, "text/html")
    for filename, content, mimetype in attachments or ():
        message.attach(filename, content, mimetype)
    return message

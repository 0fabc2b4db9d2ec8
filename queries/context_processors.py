"""What every page shows: whom to write to."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest


def contact(request: HttpRequest) -> dict:
    return {"contact": settings.SMTPLOG_CONTACT_EMAIL}

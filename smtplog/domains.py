"""Which mail addresses are the university's: the one campus-domain rule."""

from __future__ import annotations

from django.conf import settings


def is_campus_domain(domain: str) -> bool:
    """A campus domain (SMTPLOG_CAMPUS_DOMAINS) or a subdomain of one; lower-case input."""
    return any(
        domain == campus or domain.endswith("." + campus)
        for campus in settings.SMTPLOG_CAMPUS_DOMAINS
    )


def is_campus_address(address: str) -> bool:
    """local@domain with a non-empty local part and a campus domain."""
    local, at, domain = address.rpartition("@")
    return bool(local and at) and is_campus_domain(domain)

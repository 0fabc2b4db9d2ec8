"""Recording each look at mail records: the web pages and the command line call this."""

from __future__ import annotations

import getpass

from django.http import HttpRequest

from queries import campus
from tracing.models import Look


def record_request(request: HttpRequest, kind: str, criteria: dict, results: int) -> Look:
    """A look by the logged-in staff member, from the client address behind our proxies."""
    address = campus.client_ip(request)
    return Look.objects.create(
        user=request.user,
        username=request.user.get_username(),
        client_ip=str(address) if address is not None else None,
        kind=kind,
        criteria=criteria,
        results=results,
    )


def record_command(criteria: dict, results: int) -> Look:
    """A look from the command line: the system account that ran it."""
    return Look.objects.create(
        username=f"{getpass.getuser()} (command line)"[:150],
        kind=Look.Kind.COMMAND,
        criteria=criteria,
        results=results,
    )

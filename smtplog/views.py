"""Site-wide views: the health check and the error pages."""

from __future__ import annotations

import sys

from django.conf import settings
from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from smtplog import health


@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """What `manage.py healthcheck` says, as JSON: 200 when healthy, 503 naming what is not."""
    report = health.check()
    return JsonResponse(report.as_dict(), status=200 if report.healthy else 503)


def server_error(request: HttpRequest) -> HttpResponse:
    """handler500: a database that cannot be reached is a 503 saying to come back later.

    Django calls it while handling the exception, so sys.exception() is what went wrong.
    The page needs nothing but settings and the request: it renders with the database down.
    """
    unavailable = isinstance(sys.exception(), OperationalError | InterfaceError)
    context = {"contact": settings.SMTPLOG_CONTACT_EMAIL}
    if unavailable:
        return render(request, "503.html", context, status=503)
    return render(request, "500.html", context, status=500)

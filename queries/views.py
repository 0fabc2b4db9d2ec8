"""The query form and its answers. Views check, record and enqueue; they never read events."""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import logging
import secrets

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils import translation
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods
from kombu.exceptions import KombuError, OperationalError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from queries import campus, throttle
from queries.forms import QueryForm
from queries.limits import first_query_of, record_query
from queries.models import Query
from queries.report import COLUMN_HELP
from queries.tasks import enqueue_report

log = logging.getLogger(__name__)

# What publishing a task raises when the broker cannot be reached.
BROKER_ERRORS = (OperationalError, KombuError, RedisConnectionError, RedisTimeoutError, OSError)
NEW_CODE = "new-code"  # the name of the "Show another image" button


def _language(request: HttpRequest) -> str:
    """The form's language choice on a POST, else the page's (cookie, Accept-Language)."""
    chosen = request.POST.get("language", "")
    if request.method == "POST" and chosen in dict(settings.LANGUAGES):
        return chosen
    return translation.get_language()


@never_cache  # every page of the form carries a captcha and a token, answers an address
@require_http_methods(["GET", "HEAD", "POST"])
def query_form(request: HttpRequest) -> HttpResponse:
    address = campus.client_ip(request)
    if not campus.is_campus(address):
        return _off_campus(request, address)
    net = campus.client_net(address)
    language = _language(request)
    with translation.override(language):
        if request.method != "POST":
            form = QueryForm(initial={"language": language})
            return render(request, "queries/form.html", {"form": form})
        if NEW_CODE in request.POST:  # "Show another image" without script
            form = QueryForm.retyped(request.POST)
            return render(request, "queries/form.html", {"form": form, "new_code": True})
        first = first_query_of(request.POST.get("token", ""))
        if first is not None and first.client_net == net:
            return _to_answer(first)  # a double submit: the first one's answer
        form = QueryForm(request.POST)
        if not form.is_valid():
            return render(request, "queries/form.html", {"form": form})
        if first is not None:
            response = _sent_again_from_elsewhere(request, first, form.cleaned_data)
        if first is None or response is None:
            response = _submit(form.cleaned_data, str(address), net, language)
    response.set_cookie(
        settings.LANGUAGE_COOKIE_NAME, language, samesite="Lax", max_age=365 * 86400
    )
    return response


def _submit(data: dict, address: str, net: str, language: str) -> HttpResponse:
    """Record the query, enqueue its report, and send the browser to the answer page."""
    query = None
    try:
        with _savepoint_in_transaction():
            query = record_query(
                address=data["email"],
                begin=data["begin"],
                end=data["end"],
                client_ip=address,
                net=net,
                language=language,
                token=data["token"],  # the form gives every page one
            )
            if query.outcome == Query.Outcome.PENDING:
                # At once if already committed; a broker that does not answer within
                # about a second raises, and the user gets the delay page.
                transaction.on_commit(functools.partial(enqueue_report, query.id))
    except IntegrityError:  # the same page submitted twice at once: the other one won
        if (first := first_query_of(data["token"])) is None:
            raise
        return _to_answer(first)
    except BROKER_ERRORS as exc:
        if query is None or query.pk is None:
            raise
        log.warning(
            "query %s: broker unavailable, left pending for the sweeper (%s)",
            query.id,
            type(exc).__name__,
        )
        return _to_answer(query, delayed=True)
    log.info("query %s: %s", query.id, query.outcome)
    return _to_answer(query)


def _sent_again_from_elsewhere(
    request: HttpRequest, first: Query, data: dict
) -> HttpResponse | None:
    """A page sent again, with a new captcha, after its client moved to another network
    (a new DHCP lease, IPv4 to IPv6): for the same address, the first query's answer,
    shown here since its answer URL is for the network that asked. For another address,
    None, and it is a new query (its page token given up for a fresh one)."""
    if data["email"] == first.address:
        with translation.override(first.language):
            return render(request, "queries/sent.html", {"query": first})
    data["token"] = secrets.token_hex(16)
    return None


def _savepoint_in_transaction():
    """Nothing in autocommit mode, where record_query() commits the query by itself (one
    round trip); in a caller's transaction, a savepoint, so that a double submit's failed
    insert is undone without breaking that transaction."""
    return transaction.atomic() if connection.in_atomic_block else contextlib.nullcontext()


def _to_answer(query: Query, delayed: bool = False) -> HttpResponse:
    """Post/Redirect/Get: reloading the answer shows it again and submits nothing."""
    url = reverse("queries:answer", args=[query.form_token]) + ("?delayed" if delayed else "")
    return HttpResponseRedirect(url, status=303)


@never_cache  # it shows the address asked about
@require_http_methods(["GET", "HEAD"])
def answer(request: HttpRequest, token: str) -> HttpResponse:
    """The answer to a submitted form, for the client network that submitted it.

    It shows what the form had (the address and the dates) and never reads the address's
    records, so it is the same whether or not there are any.
    """
    address = campus.client_ip(request)
    if not campus.is_campus(address):
        return _off_campus(request, address)
    query = first_query_of(token, campus.client_net(address))
    if query is None:
        return render(request, "queries/answer_gone.html", status=404)
    with translation.override(query.language):
        if query.outcome == Query.Outcome.LIMITED:
            return render(request, "queries/limited.html", {"query": query, **_facts()}, status=429)
        if "delayed" in request.GET and query.outcome == Query.Outcome.PENDING:
            return render(request, "queries/delayed.html", {"query": query})
        return render(request, "queries/sent.html", {"query": query})


def _off_campus(request: HttpRequest, address: campus.IPAddress | None) -> HttpResponse:
    context = {"client_ip": address, "vpn_url": settings.SMTPLOG_VPN_URL}
    return render(request, "queries/off_campus.html", context, status=403)


def _facts() -> dict:
    return {
        "retention_days": settings.SMTPLOG_RETENTION_DAYS,
        "domains": settings.SMTPLOG_CAMPUS_DOMAINS,
        "contact": settings.SMTPLOG_CONTACT_EMAIL,
        "limit_address": settings.SMTPLOG_LIMIT_PER_ADDRESS,
        "limit_ip": settings.SMTPLOG_LIMIT_PER_IP,
    }


def help_page(request: HttpRequest) -> HttpResponse:
    return render(request, "queries/help.html", {"column_help": COLUMN_HELP, **_facts()})


# A person answering a challenge needs a few images, a refresh or two, perhaps the sound.
CAPTCHA_LIMIT = 30
CAPTCHA_WINDOW = dt.timedelta(minutes=5)


def captcha_guard(view):
    """The captcha library's views for campus clients only, CAPTCHA_LIMIT per network."""

    @functools.wraps(view)
    def guarded(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        address = campus.client_ip(request)
        if not campus.is_campus(address):
            return render(request, "queries/off_campus.html", {"client_ip": address}, status=403)
        key = f"captcha:{campus.client_net(address)}"
        if not throttle.allow(key, CAPTCHA_LIMIT, CAPTCHA_WINDOW):
            return HttpResponse(status=429, headers={"Retry-After": "60"})
        return view(request, *args, **kwargs)

    return guarded

"""The staff pages of the trace: a search, its CSV, a message's whole path.

Staff only, in the admin's look; each view validates, calls tracing.search, records the
look in the audit (tracing.audit) and renders.
"""

from __future__ import annotations

import functools

from django.contrib import admin
from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from smtplog.models import Message
from tracing import audit, export, search
from tracing.forms import TraceForm
from tracing.models import Look

MAX_PAGES = search.EXPORT_LIMIT // search.PAGE_SIZE


def staff_only(view):
    """Anonymous: to the admin's login page. Logged in but not staff: 403, saying why."""

    @functools.wraps(view)
    def wrapped(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        user = request.user
        if not user.is_authenticated:
            return redirect_to_login(request.get_full_path(), reverse("admin:login"))
        if not (user.is_active and user.is_staff):
            context = admin_context(request, _("Staff only"))
            return TemplateResponse(request, "tracing/forbidden.html", context, status=403)
        return view(request, *args, **kwargs)

    return never_cache(require_safe(wrapped))


def admin_context(request: HttpRequest, title: str) -> dict:
    """The admin's page frame (its header, user links, and no app sidebar: see urls)."""
    return {**admin.site.each_context(request), "title": title}


def _page(request: HttpRequest) -> int:
    try:
        return min(max(int(request.GET.get("page", "1")), 1), MAX_PAGES)
    except ValueError:
        return 1


def _query_string(request: HttpRequest, **changes) -> str:
    query = request.GET.copy()
    for name, value in changes.items():
        query[name] = value
    return query.urlencode()


@staff_only
def search_page(request: HttpRequest) -> HttpResponse:
    form = TraceForm(request.GET or None)  # no parameters: the empty form, no search
    context = {**admin_context(request, _("Message trace")), "form": form}
    if form.is_bound and form.is_valid():
        page = _page(request)
        criteria = form.criteria()
        offset = (page - 1) * search.PAGE_SIZE
        results, more = search.search(criteria, search.PAGE_SIZE, offset)
        audit.record_request(
            request, Look.Kind.SEARCH, {**criteria.as_dict(), "page": page}, len(results)
        )
        context |= {
            "criteria": criteria,
            "results": results,
            "page": page,
            "first_number": offset + 1,
            "newer": _query_string(request, page=page - 1) if page > 1 else "",
            "older": _query_string(request, page=page + 1) if more and page < MAX_PAGES else "",
            "export": _query_string(request),
            "export_limit": search.EXPORT_LIMIT,
        }
    return TemplateResponse(request, "tracing/search.html", context)


@staff_only
def export_csv(request: HttpRequest) -> HttpResponse:
    form = TraceForm(request.GET)
    if not form.is_valid():
        context = {**admin_context(request, _("Message trace")), "form": form}
        return TemplateResponse(request, "tracing/search.html", context, status=400)
    criteria = form.criteria()
    results, more = search.search(criteria, search.EXPORT_LIMIT)
    audit.record_request(request, Look.Kind.EXPORT, criteria.as_dict(), len(results))
    response = HttpResponse(export.render_csv(results, more), content_type="text/csv")
    stamp = timezone.localtime().strftime("%Y%m%d-%H%M")
    response["Content-Disposition"] = f'attachment; filename="trace-{stamp}.csv"'
    return response


def _message_look(request: HttpRequest, pk: int, form: str) -> tuple[Message, search.Chain]:
    message = get_object_or_404(Message, pk=pk)
    chain = search.chain_of(message)
    criteria = {"message": pk, "queue_id": message.queue_id, "relay": message.relay}
    audit.record_request(request, Look.Kind.MESSAGE, {**criteria, "format": form}, 1)
    return message, chain


@staff_only
def message_page(request: HttpRequest, pk: int) -> HttpResponse:
    message, chain = _message_look(request, pk, "page")
    title = _("Message %(queue_id)s on %(relay)s")
    context = {
        **admin_context(request, title % {"queue_id": message.queue_id, "relay": message.relay}),
        "message": message,
        "chain": chain,
        "path": search.path(chain),
        "recipients": chain.recipients(),
        "gaps": chain.gaps(),
        "explanations": search.explanations(chain.events),
        "nearby": search.nearby_refusals(chain),
        "nearby_minutes": int(search.NEARBY.total_seconds() // 60),
    }
    return TemplateResponse(request, "tracing/message.html", context)


@staff_only
def message_json(request: HttpRequest, pk: int) -> JsonResponse:
    message, chain = _message_look(request, pk, "json")
    data = export.result_json(chain)
    data["explanations"] = [
        {"code": e.code, "text": e.text} for e in search.explanations(chain.events)
    ]
    data["nearby_refusals"] = [
        export.event_json(e, e.queue_id) for e in search.nearby_refusals(chain)
    ]
    return JsonResponse(data, json_dumps_params={"ensure_ascii": False, "indent": 2})

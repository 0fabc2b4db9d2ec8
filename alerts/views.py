"""The staff dashboard, a page in the admin's look (its URL: smtplog/urls.py)."""

from __future__ import annotations

from django.contrib import admin
from django.template.response import TemplateResponse
from django.utils.translation import gettext_lazy as _

from alerts import dashboard


def dashboard_view(request):
    context = {**admin.site.each_context(request), "title": _("Dashboard"), **dashboard.context()}
    return TemplateResponse(request, "admin/alerts/dashboard.html", context)

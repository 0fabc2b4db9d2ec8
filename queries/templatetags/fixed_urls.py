"""{% fixed_url "name" %}: what {% url "name" %} gives for a URL without arguments, reversed once.

Every page of the form shows three or four such links, and reversing a name walks the
URLconf each time: a quarter of the answer page's rendering. The result depends only on
the name, the script prefix, the URLconf, the current application namespace and (for
language-prefixed patterns) the language, so it is kept per combination of those.
"""

from __future__ import annotations

import functools

from django import template
from django.conf import settings
from django.urls import get_script_prefix, get_urlconf, reverse
from django.utils.translation import get_language

register = template.Library()


@register.simple_tag(takes_context=True)
def fixed_url(context, name: str) -> str:
    try:  # the application namespace, chosen as {% url %} chooses it
        current_app = context.request.current_app
    except AttributeError:
        try:
            current_app = context.request.resolver_match.namespace
        except AttributeError:
            current_app = None
    return _reverse(
        name,
        get_script_prefix(),
        get_urlconf() or settings.ROOT_URLCONF,
        current_app,
        get_language(),
    )


@functools.lru_cache(maxsize=256)
def _reverse(
    name: str, prefix: str, urlconf: str, current_app: str | None, language: str | None
) -> str:
    return reverse(name, urlconf=urlconf, current_app=current_app)

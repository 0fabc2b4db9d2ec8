"""{% same_for_everyone %}...{% end_same_for_everyone %}: markup rendered once, then reused.

For the fixed parts of the pages (the header's title, links and language buttons, the
footer, a page's plain sentences): their text depends only on the active language and
their links only on the script prefix and the URLconf, yet rendering them (translations,
URL and static-file look-ups) was a third of the cost of the answer to a submit. Each
block is rendered once per language, script prefix and URLconf, and that output is
reused for every later request.

Never put anything of a request, a form or a user inside such a block: whatever it shows
is shown to everyone asking in that language. With DEBUG on, blocks are rendered every
time, so edited templates show at once; a changed setting (tests) empties the store.
"""

from __future__ import annotations

import itertools

from django import template
from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.urls import get_script_prefix, get_urlconf
from django.utils.safestring import SafeString
from django.utils.translation import get_language

register = template.Library()
_rendered: dict[tuple, SafeString] = {}
_blocks = itertools.count()
MAX_KEPT = 1000  # blocks x languages x prefixes; a bound, never reached by this site


class SameForEveryoneNode(template.Node):
    def __init__(self, nodelist: template.NodeList) -> None:
        self.nodelist = nodelist
        self.block = next(_blocks)  # a template parsed again makes new blocks

    def render(self, context: template.Context) -> SafeString:
        if settings.DEBUG:
            return self.nodelist.render(context)
        key = (
            self.block,
            get_language(),
            get_script_prefix(),
            get_urlconf() or settings.ROOT_URLCONF,
            context.autoescape,
        )
        try:
            return _rendered[key]
        except KeyError:
            output = self.nodelist.render(context)
            if len(_rendered) < MAX_KEPT:
                _rendered[key] = output
            return output


@register.tag
def same_for_everyone(parser, token) -> SameForEveryoneNode:
    nodelist = parser.parse(("end_same_for_everyone",))
    parser.delete_first_token()
    return SameForEveryoneNode(nodelist)


@receiver(setting_changed)
def _forget(**kwargs) -> None:
    _rendered.clear()

"""Headless chromium (Debian's, driven by Playwright) and axe-core for the browser tests."""

from __future__ import annotations

import contextlib
from pathlib import Path

from tests.services import require_chromium

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PHONE = {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True}
AXE = Path(__file__).resolve().parent / "assets" / "axe-core" / "axe.min.js"
AXE_VERSION = "4.14.1"


@contextlib.contextmanager
def browser(**context):
    """A page of a fresh browser context (locale, viewport, ... as keyword arguments)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=require_chromium(), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield chromium.new_context(**context).new_page()
        finally:
            chromium.close()


def axe_violations(page, impacts: tuple[str, ...] = ("serious", "critical")) -> list[str]:
    """axe-core's violations of the page as it is now, of those impacts, one line each."""
    # Evaluated through the browser's debugging protocol, which the page's CSP (no inline
    # script) does not bind, as an injected <script> tag would be.
    page.evaluate(AXE.read_text() + "\n;true")
    assert page.evaluate("axe.version") == AXE_VERSION
    results = page.evaluate("axe.run(document)")
    assert len(results["passes"]) > 10  # the rules ran on a real page
    return [
        f"{v['id']} ({v['impact']}): {v['help']} — "
        + "; ".join(node["target"][0] for node in v["nodes"][:3])
        for v in results["violations"]
        if v["impact"] in impacts
    ]

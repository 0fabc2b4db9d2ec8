"""Fixtures of the query form tests: form data, a heavier sender."""

from __future__ import annotations

import datetime as dt

import pytest
from django.conf import settings
from django.utils import translation

from tests.conftest import NOW


@pytest.fixture(autouse=True)
def default_language():
    """Requests in the test client activate their language; keep it from leaking."""
    with translation.override(settings.LANGUAGE_CODE):
        yield


@pytest.fixture
def form_data():
    """A valid POST of the form (the test captcha answer passes in settings_test)."""

    def make(**fields) -> dict:
        today = NOW.date()
        data = {
            "language": "en",
            "email": "alice@cs.nthu.edu.tw",
            "begin": (today - dt.timedelta(days=30)).isoformat(),
            "end": today.isoformat(),
            "captcha_0": "testkey",
            "captcha_1": "PASSED",
            "token": "",
        }
        data.update(fields)
        return data

    return make

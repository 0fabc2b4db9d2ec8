"""The fixed-window counter of cheap requests (queries/throttle.py), on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from queries import throttle
from queries.models import ClientHits

pytestmark = pytest.mark.django_db

WINDOW = dt.timedelta(minutes=5)
START = dt.datetime(2026, 11, 30, 8, 5, tzinfo=dt.UTC)


def test_counts_up_to_the_limit_in_a_window_then_refuses():
    answers = [throttle.allow("captcha:10.0.0.1", 3, WINDOW, START) for _ in range(5)]
    assert answers == [True, True, True, False, False]
    row = ClientHits.objects.get()
    assert (row.key, row.window, row.hits) == ("captcha:10.0.0.1", START, 3)


def test_a_new_window_and_another_key_count_from_zero():
    for _ in range(2):
        assert throttle.allow("captcha:10.0.0.1", 2, WINDOW, START + dt.timedelta(seconds=10))
    assert not throttle.allow("captcha:10.0.0.1", 2, WINDOW, START + dt.timedelta(minutes=4))
    assert throttle.allow("captcha:10.0.0.2", 2, WINDOW, START + dt.timedelta(minutes=4))
    assert throttle.allow("captcha:10.0.0.1", 2, WINDOW, START + dt.timedelta(minutes=5))
    hits = ClientHits.objects.order_by("window", "key").values_list("key", "window", "hits")
    assert list(hits) == [
        ("captcha:10.0.0.1", START, 2),
        ("captcha:10.0.0.2", START, 1),
        ("captcha:10.0.0.1", START + WINDOW, 1),
    ]
    # The windows are whole: what is older than a moment is forgotten by its start.
    assert throttle.forget_before(START + WINDOW) == 2


def test_one_statement_per_request_whether_the_row_exists_or_not():
    with CaptureQueriesContext(connection) as first:
        throttle.allow("captcha:10.0.0.3", 5, WINDOW, START)
    with CaptureQueriesContext(connection) as again:
        throttle.allow("captcha:10.0.0.3", 5, WINDOW, START)
    assert len(first) == len(again) == 1
    assert ClientHits.objects.get().hits == 2

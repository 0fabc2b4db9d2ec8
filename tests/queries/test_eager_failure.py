"""Without a broker tasks run inside the request: a failing send must not become a 500."""

from __future__ import annotations

import smtplib

import pytest

from queries.models import Query
from smtplog.celery import app
from tests.queries.backends import fail_next

pytestmark = pytest.mark.django_db


@pytest.fixture
def eager_failures_contained():
    """As smtplog.settings has it (settings_test propagates, so failing tasks fail tests)."""
    before = app.conf.task_eager_propagates
    app.conf.task_eager_propagates = False
    yield
    app.conf.task_eager_propagates = before


def test_a_send_failing_in_eager_mode_still_gives_the_answer_page(
    campus_client,
    form_data,
    settings,
    frozen,
    eager_failures_contained,
    django_capture_on_commit_callbacks,
):
    # Every attempt (the first and each immediate eager retry) meets a 451.
    fail_next(settings, *[smtplib.SMTPDataError(451, b"4.3.0 Try again later")] * 20)
    with django_capture_on_commit_callbacks(execute=True):
        response = campus_client.post("/", form_data(), follow=True)
    assert response.status_code == 200
    query = Query.objects.get()
    assert query.outcome in (Query.Outcome.PENDING, Query.Outcome.FAILED)
    assert query.attempts >= 1 and "451" in query.error
